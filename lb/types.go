package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Errors returned by Balancer methods wrap one of these, so callers (the
// API server) can map them to status codes with errors.Is.
var (
	ErrInvalid  = errors.New("invalid argument")
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrFull     = errors.New("table full")
)

// Proto is an IP protocol number a VIP serves.
type Proto uint8

const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// ParseProto accepts "tcp" and "udp" (any case).
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("protocol %q: must be tcp or udp: %w", s, ErrInvalid)
}

// VIPKey names one service: address, port (0 = every port) and protocol.
type VIPKey struct {
	Addr  netip.Addr
	Port  uint16
	Proto Proto
}

// String formats the key as the CLI reads it: 203.0.113.1:80/tcp, [2001:db8::1]:443/tcp.
func (k VIPKey) String() string {
	return netip.AddrPortFrom(k.Addr, k.Port).String() + "/" + k.Proto.String()
}

// ParseVIPKey reads "ADDR:PORT/PROTO" (IPv6 addresses in brackets).
func ParseVIPKey(s string) (VIPKey, error) {
	ap, proto, ok := strings.Cut(s, "/")
	if !ok {
		return VIPKey{}, fmt.Errorf("vip %q: want ADDRESS:PORT/PROTOCOL, e.g. 203.0.113.1:80/tcp: %w", s, ErrInvalid)
	}
	addrPort, err := netip.ParseAddrPort(ap)
	if err != nil {
		return VIPKey{}, fmt.Errorf("vip %q: %v: %w", s, err, ErrInvalid)
	}
	p, err := ParseProto(proto)
	if err != nil {
		return VIPKey{}, fmt.Errorf("vip %q: %w", s, err)
	}
	k := VIPKey{Addr: addrPort.Addr(), Port: addrPort.Port(), Proto: p}
	return k, k.validate()
}

func (k VIPKey) validate() error {
	switch {
	case !k.Addr.IsValid():
		return fmt.Errorf("vip %s: missing address: %w", k, ErrInvalid)
	case k.Addr.Zone() != "":
		return fmt.Errorf("vip %s: address must not have a zone: %w", k, ErrInvalid)
	case k.Addr.Is4In6():
		return fmt.Errorf("vip %s: use the plain IPv4 form, not IPv4-mapped IPv6: %w", k, ErrInvalid)
	case k.Addr.IsUnspecified() || k.Addr.IsMulticast():
		return fmt.Errorf("vip %s: address must be unicast: %w", k, ErrInvalid)
	case k.Proto != TCP && k.Proto != UDP:
		return fmt.Errorf("vip %s: protocol must be tcp or udp: %w", k, ErrInvalid)
	}
	return nil
}

// VIPFlags change how a VIP hashes flows and uses the connection table.
// The bit values are Katran's.
type VIPFlags uint32

const (
	// FlagNoSrcPort hashes without the client's source port: all
	// connections of one client address go to one real.
	FlagNoSrcPort VIPFlags = 0x1
	// FlagLRUBypass never reads or writes the connection table: every
	// packet is placed by the ring alone.
	FlagLRUBypass VIPFlags = 0x2
	// FlagDportOnly hashes on the destination port only: every client of
	// a port-0 VIP that targets one port goes to one real.
	FlagDportOnly VIPFlags = 0x8

	allFlags = FlagNoSrcPort | FlagLRUBypass | FlagDportOnly
)

var flagNames = []struct {
	flag VIPFlags
	name string
}{
	{FlagNoSrcPort, "no_src_port"},
	{FlagLRUBypass, "lru_bypass"},
	{FlagDportOnly, "dport_only"},
}

// FlagNames lists the flag names ParseFlags accepts.
func FlagNames() []string {
	names := make([]string, len(flagNames))
	for i, f := range flagNames {
		names[i] = f.name
	}
	return names
}

func (f VIPFlags) String() string {
	var names []string
	for _, n := range flagNames {
		if f&n.flag != 0 {
			names = append(names, n.name)
		}
	}
	if rest := f &^ allFlags; rest != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint32(rest)))
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

// ParseFlags reads a comma-separated list of flag names ("" = none).
func ParseFlags(s string) (VIPFlags, error) {
	var f VIPFlags
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" || name == "-" {
			continue
		}
		found := false
		for _, n := range flagNames {
			if n.name == name {
				f |= n.flag
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("flag %q: must be one of %s: %w", name, strings.Join(FlagNames(), ", "), ErrInvalid)
		}
	}
	return f, nil
}

// VIP is a service and how it balances.
type VIP struct {
	Key      VIPKey
	Flags    VIPFlags
	RingSize uint32 // 0 = maglev.DefaultSize
}

// RealState says whether a real takes new flows and keeps old ones.
type RealState uint8

const (
	// Up: in the ring by its weight; keeps its flows.
	Up RealState = iota
	// Draining: out of the ring (no new flows); established flows stay.
	Draining
	// Down: out of the ring, and its established flows are re-placed on
	// the next packet (its connection-table entries are ignored).
	Down
)

func (s RealState) String() string {
	switch s {
	case Up:
		return "up"
	case Draining:
		return "draining"
	case Down:
		return "down"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// MaxWeight bounds a real's weight.
const MaxWeight = 65535

// Real is a backend of one VIP.
type Real struct {
	Addr   netip.Addr
	Weight uint32
	State  RealState
}

// VIPInfo is a VIP with its reals, as Balancer.VIPs reports it.
type VIPInfo struct {
	VIP
	Reals []Real
}

func sortReals(r []Real) {
	sort.Slice(r, func(i, j int) bool { return r[i].Addr.Less(r[j].Addr) })
}
