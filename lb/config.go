package lb

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
)

// Config sizes the data plane and sets its global behaviour. The zero value
// of each field means its default.
type Config struct {
	MaxVIPs  int // services; default 512
	MaxReals int // (VIP, real) pairs; default 4096
	// ConnTableSize is the total number of connection-table entries,
	// split evenly over the forwarding CPUs; default 1,000,000.
	ConnTableSize int
	// FallbackTableSize sizes the shared table used by CPUs that have no
	// table of their own; default 65,536.
	FallbackTableSize int
	// ForwardingCPUs get a connection table each; default every possible CPU.
	ForwardingCPUs []int
	// NUMANodes, when set, has one entry per ForwardingCPUs entry: the node
	// that CPU's table is allocated on.
	NUMANodes []int
	// TunnelMTU is the largest outer IP packet the balancer sends; larger
	// ones are answered with ICMP too-big. Default 1500.
	TunnelMTU int
	// SourcePrefixV4 (a /16) and SourcePrefixV6 (a /96) hold the crafted
	// outer source addresses; defaults 172.16.0.0/16 and 100::/96.
	SourcePrefixV4 netip.Prefix
	SourcePrefixV6 netip.Prefix
	// NoICMPTooBig drops oversized packets instead of answering them.
	NoICMPTooBig bool
	// GatewayMAC is the next hop of every encapsulated frame. Until it is
	// set (here or with SetGatewayMAC), VIP traffic is dropped.
	GatewayMAC net.HardwareAddr
	// PinPath, when set, pins every map there (e.g.
	// /sys/fs/bpf/vipcast/eth0) and adopts what is already pinned, so a
	// restarted daemon keeps its tables and established flows.
	PinPath string
}

const (
	defaultMaxVIPs      = 512
	defaultMaxReals     = 4096
	defaultConnTable    = 1_000_000
	defaultFallbackSize = 65_536
	defaultTunnelMTU    = 1500
	// Bounds that keep a typo from asking the kernel for terabytes.
	limitVIPs      = 1 << 16
	limitReals     = 1 << 20
	limitConnTable = 1 << 28
)

var (
	defaultPrefixV4 = netip.MustParsePrefix("172.16.0.0/16")
	defaultPrefixV6 = netip.MustParsePrefix("100::/96")
)

// withDefaults fills in defaults and validates; the error names the field.
func (c Config) withDefaults() (Config, error) {
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.MaxVIPs, defaultMaxVIPs)
	setInt(&c.MaxReals, defaultMaxReals)
	setInt(&c.ConnTableSize, defaultConnTable)
	setInt(&c.FallbackTableSize, defaultFallbackSize)
	setInt(&c.TunnelMTU, defaultTunnelMTU)
	if !c.SourcePrefixV4.IsValid() {
		c.SourcePrefixV4 = defaultPrefixV4
	}
	if !c.SourcePrefixV6.IsValid() {
		c.SourcePrefixV6 = defaultPrefixV6
	}
	if c.ForwardingCPUs == nil {
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return c, fmt.Errorf("count possible CPUs: %w", err)
		}
		for cpu := range n {
			c.ForwardingCPUs = append(c.ForwardingCPUs, cpu)
		}
	}

	inRange := func(name string, v, lo, hi int) error {
		if v < lo || v > hi {
			return fmt.Errorf("%s: must be %d..%d, got %d: %w", name, lo, hi, v, ErrInvalid)
		}
		return nil
	}
	for _, err := range []error{
		inRange("max_vips", c.MaxVIPs, 1, limitVIPs),
		inRange("max_reals", c.MaxReals, 2, limitReals),
		inRange("lru_size", c.ConnTableSize, 1, limitConnTable),
		inRange("fallback_lru_size", c.FallbackTableSize, 1, limitConnTable),
		// 1280 is IPv6's minimum link MTU; 9216 covers jumbo frames.
		inRange("tunnel_mtu", c.TunnelMTU, 1280, 9216),
	} {
		if err != nil {
			return c, err
		}
	}
	if p := c.SourcePrefixV4; !p.Addr().Is4() || p.Bits() != 16 || p.Masked() != p {
		return c, fmt.Errorf("tunnel_source_v4: must be an IPv4 /16 such as 172.16.0.0/16, got %s: %w", p, ErrInvalid)
	}
	if p := c.SourcePrefixV6; !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 96 || p.Masked() != p {
		return c, fmt.Errorf("tunnel_source_v6: must be an IPv6 /96 such as 100::/96, got %s: %w", p, ErrInvalid)
	}
	if len(c.ForwardingCPUs) == 0 {
		return c, fmt.Errorf("forwarding_cores: must list at least one CPU: %w", ErrInvalid)
	}
	if c.NUMANodes != nil && len(c.NUMANodes) != len(c.ForwardingCPUs) {
		return c, fmt.Errorf("numa_nodes: must have one entry per forwarding core (%d), got %d: %w",
			len(c.ForwardingCPUs), len(c.NUMANodes), ErrInvalid)
	}
	if c.ConnTableSize < len(c.ForwardingCPUs) {
		return c, fmt.Errorf("lru_size: %d is smaller than the number of forwarding cores (%d): %w",
			c.ConnTableSize, len(c.ForwardingCPUs), ErrInvalid)
	}
	if c.GatewayMAC != nil && len(c.GatewayMAC) != 6 {
		return c, fmt.Errorf("gateway_mac: must be a 6-byte Ethernet address, got %s: %w", c.GatewayMAC, ErrInvalid)
	}
	return c, nil
}
