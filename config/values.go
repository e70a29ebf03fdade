package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Community is a standard BGP community (RFC 1997): ASN<<16 | value.
type Community uint32

// Well-known communities accepted by name.
var wellKnownCommunities = []struct {
	name string
	c    Community
}{
	{"graceful-shutdown", 0xFFFF0000}, // RFC 8326
	{"blackhole", 0xFFFF029A},         // RFC 7999
	{"no-export", 0xFFFFFF01},
	{"no-advertise", 0xFFFFFF02},
	{"no-export-subconfed", 0xFFFFFF03},
}

// ParseCommunity reads "65000:100" or a well-known name such as
// "no-export".
func ParseCommunity(s string) (Community, error) {
	for _, w := range wellKnownCommunities {
		if s == w.name {
			return w.c, nil
		}
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, errors.New(`must be "ASN:VALUE" (each 0..65535) or a well-known name such as "no-export"`)
	}
	a, err1 := strconv.ParseUint(hi, 10, 16)
	v, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, errors.New(`must be "ASN:VALUE" with each part 0..65535`)
	}
	return Community(a<<16 | v), nil
}

func (c Community) String() string {
	for _, w := range wellKnownCommunities {
		if c == w.c {
			return w.name
		}
	}
	return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xFFFF)
}

// LargeCommunity is a BGP large community (RFC 8092).
type LargeCommunity struct {
	Global, Local1, Local2 uint32
}

// ParseLargeCommunity reads "GLOBAL:LOCAL1:LOCAL2", each part 0..4294967295.
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return LargeCommunity{}, errors.New(`must be "GLOBAL:LOCAL1:LOCAL2" with each part 0..4294967295`)
	}
	var n [3]uint32
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, errors.New(`must be "GLOBAL:LOCAL1:LOCAL2" with each part 0..4294967295`)
		}
		n[i] = uint32(v)
	}
	return LargeCommunity{n[0], n[1], n[2]}, nil
}

func (c LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", c.Global, c.Local1, c.Local2)
}

// ListenAddr is where a server listens: a TCP address or a unix socket.
// The zero value means "do not listen".
type ListenAddr struct {
	TCP  netip.AddrPort
	Unix string // absolute path
}

// ParseListenAddr reads "IP:PORT", "[IPv6]:PORT" or "unix:///path"
// ("unix:/path" too); "" is the zero ListenAddr.
func ParseListenAddr(s string) (ListenAddr, error) {
	if s == "" {
		return ListenAddr{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		path := strings.TrimPrefix(rest, "//")
		if !strings.HasPrefix(path, "/") {
			return ListenAddr{}, errors.New(`must be "unix:///absolute/path"`)
		}
		return ListenAddr{Unix: path}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ListenAddr{}, errors.New(`must be "IP:PORT" (IPv6 in brackets) or "unix:///path"`)
	}
	return ListenAddr{TCP: ap}, nil
}

// IsZero reports whether the address is unset (do not listen).
func (l ListenAddr) IsZero() bool { return !l.TCP.IsValid() && l.Unix == "" }

// Network is "tcp" or "unix" (for net.Listen); "" for the zero value.
func (l ListenAddr) Network() string {
	switch {
	case l.Unix != "":
		return "unix"
	case l.TCP.IsValid():
		return "tcp"
	}
	return ""
}

// Address is the net.Listen address: "IP:PORT" or the socket path.
func (l ListenAddr) Address() string {
	if l.Unix != "" {
		return l.Unix
	}
	if l.TCP.IsValid() {
		return l.TCP.String()
	}
	return ""
}

// String formats the address as the config file writes it.
func (l ListenAddr) String() string {
	if l.Unix != "" {
		return "unix://" + l.Unix
	}
	return l.Address()
}

// parseMarkRange reads "FIRST-LAST".
func parseMarkRange(s string) (MarkRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(lo, 10, 32)
	last, err2 := strconv.ParseUint(hi, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return MarkRange{}, errors.New(`must be "FIRST-LAST" with 1 <= FIRST <= LAST <= 4294967295`)
	}
	return MarkRange{First: uint32(first), Last: uint32(last)}, nil
}

// isPrime uses trial division; ring sizes are below 2^24.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint64(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
