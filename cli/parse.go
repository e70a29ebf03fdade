package cli

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"vipcast/api"
)

// vipSyntax is appended to errors about a malformed VIP.
const vipSyntax = "want ADDR:PORT/PROTO, e.g. 203.0.113.1:80/tcp or [2001:db8::1]:443/tcp"

// Limits the CLI checks before calling vipcastd; the daemon checks them too.
const (
	maxWeight   = 65535
	minRingSize = 3
	maxRingSize = 1 << 24
)

// vipFlags are the VIP flag names vipcastd knows, in the order they are
// documented.
func vipFlags() []string {
	return []string{"no_src_port", "lru_bypass", "dport_only"}
}

// vipKey identifies a VIP: address, port (0 = every port) and protocol.
type vipKey struct {
	addr  netip.Addr
	port  uint16
	proto string
}

// String is the form vipcast reads and prints: 203.0.113.1:80/tcp,
// [2001:db8::1]:443/tcp.
func (k vipKey) String() string {
	return netip.AddrPortFrom(k.addr, k.port).String() + "/" + k.proto
}

func (k vipKey) api() *api.VIPKey {
	return &api.VIPKey{Address: k.addr.String(), Port: uint32(k.port), Protocol: k.proto}
}

// parseVIPKey reads ADDR:PORT/PROTO. Errors name the bad value and say what
// is expected.
func parseVIPKey(s string) (vipKey, error) {
	bad := func(format string, args ...any) (vipKey, error) {
		return vipKey{}, fmt.Errorf("invalid VIP %q: %s; %s", s, fmt.Sprintf(format, args...), vipSyntax)
	}
	hostPort, proto, ok := strings.Cut(s, "/")
	if !ok {
		return bad("missing /PROTO")
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return bad("protocol %q must be tcp or udp", proto)
	}
	if hostPort == "" {
		return bad("missing ADDR:PORT")
	}
	host, portStr, err := net.SplitHostPort(hostPort)
	if err != nil {
		if strings.Count(hostPort, ":") > 1 && !strings.HasPrefix(hostPort, "[") {
			return bad("an IPv6 address needs brackets")
		}
		if !strings.Contains(hostPort, ":") || strings.HasSuffix(hostPort, "]") {
			return bad("missing :PORT (use :0 for every port)")
		}
		if ae, ok := err.(*net.AddrError); ok {
			return bad("%s", ae.Err)
		}
		return bad("%v", err)
	}
	addr, err := parseAddr(host)
	if err != nil {
		return bad("%v", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return bad("port %q must be a number in 0..65535", portStr)
	}
	return vipKey{addr: addr, port: uint16(port), proto: proto}, nil
}

// parseAddr reads a plain IPv4 or IPv6 address (no zone, no brackets).
func parseAddr(s string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q is not an IP address", s)
	}
	if addr.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has a zone, which vipcast does not use", s)
	}
	return addr, nil
}

// parseReal reads a real's address.
func parseReal(s string) (netip.Addr, error) {
	if _, err := netip.ParseAddrPort(s); err == nil {
		return netip.Addr{}, fmt.Errorf("invalid real %q: give the address only; traffic goes to the VIP's port", s)
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid real %q: not an IP address", s)
	}
	if addr.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid real %q: zones are not used, give the address only", s)
	}
	return addr, nil
}

// parseMark reads a socket mark, decimal or 0x-hex, 1..4294967295.
func parseMark(s string) (uint32, error) {
	var m uint32
	if err := markFlag(&m).Set(s); err != nil {
		return 0, fmt.Errorf("invalid mark %q: %w", s, err)
	}
	return m, nil
}

// uintFlag is a flag holding an unsigned number within [min, max] (and
// passing check, if set). Its error says what is allowed, so that
// "--weight -1" reads `invalid argument "-1" for "--weight" flag: must be a
// number in 0..65535` rather than a strconv error.
type uintFlag struct {
	value    *uint32
	min, max uint64
	base     int // 10, or 0 to accept 0x hex too
	check    func(uint64) bool
	want     string
	typ      string
}

func (f *uintFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, f.base, 64)
	if err != nil || n < f.min || n > f.max || (f.check != nil && !f.check(n)) {
		return errors.New(f.want)
	}
	*f.value = uint32(n)
	return nil
}

func (f *uintFlag) String() string { return strconv.FormatUint(uint64(*f.value), 10) }
func (f *uintFlag) Type() string   { return f.typ }

func weightFlag(v *uint32) *uintFlag {
	return &uintFlag{value: v, max: maxWeight, base: 10, typ: "uint",
		want: fmt.Sprintf("must be a number in 0..%d", maxWeight)}
}

func ringSizeFlag(v *uint32) *uintFlag {
	return &uintFlag{value: v, min: minRingSize, max: maxRingSize, base: 10, check: isPrime, typ: "uint",
		want: fmt.Sprintf("must be a prime number in %d..%d, e.g. 65537", minRingSize, maxRingSize)}
}

func markFlag(v *uint32) *uintFlag {
	return &uintFlag{value: v, min: 1, max: math.MaxUint32, base: 0, typ: "mark", want: markWant}
}

const markWant = "must be a number in 1..4294967295 (decimal or 0x hex)"

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// parseFlags checks --flags values, accepting comma-separated lists and
// repeated flags; the result is sorted and without duplicates.
func parseFlags(values []string) ([]string, error) {
	known := vipFlags()
	out := []string{}
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			f = strings.ToLower(strings.TrimSpace(f))
			if f == "" {
				continue
			}
			if !slices.Contains(known, f) {
				return nil, fmt.Errorf("invalid --flags value %q: known flags are %s", f, strings.Join(known, ", "))
			}
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// parseMAC reads a unicast Ethernet address.
func parseMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
		return "", fmt.Errorf("invalid MAC %q: must be a unicast Ethernet address such as 52:54:00:12:35:02", s)
	}
	return mac.String(), nil
}
