package lab

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The lab's address plan (TESTBED.md).
var (
	RouterV4 = netip.MustParseAddr("192.0.2.1")
	RouterV6 = netip.MustParseAddr("2001:db8:0:1::1")
	ClientV4 = netip.MustParseAddr("192.0.2.10")
	ClientV6 = netip.MustParseAddr("2001:db8:0:1::10")
	// Client2V4 is a second client address, for traffic a filter treats
	// differently (shared mode).
	Client2V4 = netip.MustParseAddr("192.0.2.20")
)

// Lab ASNs: the LBs are one AS, the router another (eBGP).
const (
	LBASN     = 65000
	RouterASN = 65001
)

// The lab's VIPs. Every real serves all of them (decap table, lo, UDP
// listeners), whichever of them a scenario configures on the LBs.
var (
	VIP4      = netip.MustParseAddr("203.0.113.1")     // HTTP, IPIP to IPv4 reals
	VIP4Other = netip.MustParseAddr("203.0.113.2")     // HTTP, removed by the reload scenario
	VIP4New   = netip.MustParseAddr("203.0.113.3")     // HTTP, added by the reload scenario
	VIP4UDP   = netip.MustParseAddr("203.0.113.5")     // UDP echo
	VIP4in6   = netip.MustParseAddr("203.0.113.6")     // HTTP, IPv4-in-IPv6 to IPv6 reals
	VIP4ECMP  = netip.MustParseAddr("203.0.113.10")    // HTTP, on both LBs
	VIP4Root  = netip.MustParseAddr("203.0.113.50")    // HTTP, shared mode on LB2
	VIP6      = netip.MustParseAddr("2001:db8:f00::1") // HTTP, IP6IP6
	VIP6UDP   = netip.MustParseAddr("2001:db8:f00::5") // UDP echo
)

// AllVIPs are the addresses every real is set up for.
var AllVIPs = []netip.Addr{VIP4, VIP4Other, VIP4New, VIP4UDP, VIP4in6, VIP4ECMP, VIP4Root, VIP6, VIP6UDP}

// Service ports on the reals.
const (
	HTTPPort = 80
	UDPPort  = 9053
)

// Check is a health check, rendered as a [health] or [vip.health] table;
// zero fields are left out (so they inherit).
type Check struct {
	Type        string
	Path        string
	Payload     string
	ExpectReply bool
	Interval    time.Duration
	Timeout     time.Duration
	Rise, Fall  int
}

// LabCheck is the lab's default check: HTTP GET /health every 200 ms,
// rise 2, fall 2 (so a real leaves ~400 ms after its server dies).
var LabCheck = Check{Type: "http", Path: "/health", Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Rise: 2, Fall: 2}

// UDPCheck is the check of the UDP echo VIPs: a datagram that must be
// answered.
var UDPCheck = Check{Type: "udp", Payload: "hc", ExpectReply: true}

// RealCfg is a [[vip.real]].
type RealCfg struct {
	Addr   netip.Addr
	Weight int    // 0 renders as the default (1); use State "drain" to stop new flows
	State  string // "" = up
}

// VIPCfg is a [[vip]].
type VIPCfg struct {
	Addr   netip.Addr
	Port   uint16
	Proto  string // "tcp" or "udp"
	Flags  []string
	Health *Check
	Reals  []RealCfg
}

// Key is the VIP as the CLI writes it: 203.0.113.1:80/tcp, [2001:db8::1]:80/tcp.
func (v VIPCfg) Key() string {
	return netip.AddrPortFrom(v.Addr, v.Port).String() + "/" + v.Proto
}

// DaemonConfig is what the lab writes as an LB's vipcast.toml.
type DaemonConfig struct {
	// GracefulRestart keeps the routes at BIRD while vipcastd restarts;
	// false withdraws them when it stops.
	GracefulRestart bool
	// Shared registers the balancer in a root program's slot instead of
	// attaching it to the interface.
	Shared *SharedMode
	// Health is the [health] table; zero means LabCheck.
	Health Check
	// Metrics is [metrics] listen, inside the LB's namespace ("" = off,
	// the default: scenarios that do not read it need no listener).
	Metrics string
	VIPs    []VIPCfg
}

// SharedMode is mode = "shared".
type SharedMode struct {
	RootMapPath string
	Position    int
}

// Reals4 and Reals6 are the lab's reals with weight 1.
func Reals4() []RealCfg {
	return []RealCfg{{Addr: realV4(1)}, {Addr: realV4(2)}, {Addr: realV4(3)}}
}

// Reals6 are the reals' IPv6 addresses.
func Reals6() []RealCfg {
	return []RealCfg{{Addr: realV6(1)}, {Addr: realV6(2)}, {Addr: realV6(3)}}
}

// DefaultVIPs is LB1's configuration after Up and after Reset: an IPv4
// and an IPv6 HTTP VIP, an IPv4 VIP with IPv6 reals, UDP echo VIPs of
// both families, and the VIP the reload scenario removes.
func DefaultVIPs() []VIPCfg {
	udp := UDPCheck
	return []VIPCfg{
		{Addr: VIP4, Port: HTTPPort, Proto: "tcp", Reals: Reals4()},
		{Addr: VIP4Other, Port: HTTPPort, Proto: "tcp", Reals: Reals4()},
		{Addr: VIP4UDP, Port: UDPPort, Proto: "udp", Health: &udp, Reals: Reals4()},
		{Addr: VIP4in6, Port: HTTPPort, Proto: "tcp", Reals: Reals6()},
		{Addr: VIP6, Port: HTTPPort, Proto: "tcp", Reals: Reals6()},
		{Addr: VIP6UDP, Port: UDPPort, Proto: "udp", Health: &udp, Reals: Reals6()},
	}
}

// DefaultConfig is LB1's configuration after Up.
func DefaultConfig() DaemonConfig {
	return DaemonConfig{GracefulRestart: true, VIPs: DefaultVIPs()}
}

// render writes the TOML file for LB lb.
func (c DaemonConfig) render(lb *LB) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# written by the vipcast lab (test/lab) for %s", lb.Name)
	p("interface = %q", lb.Iface)
	if c.Shared != nil {
		p("mode = \"shared\"")
		p("root_map_path = %q", c.Shared.RootMapPath)
		p("prog_position = %d", c.Shared.Position)
	} else {
		p("xdp_mode = \"native\"")
	}
	p("gateway_mac = \"auto\"")
	p("lru_size = 65536")
	p("fallback_lru_size = 4096")
	p("max_vips = 32")
	p("max_reals = 512")
	p("hc_forwarding = true")
	p("hc_mark_range = \"10000-10999\"")
	p("")
	p("[api]")
	p("socket = %q", lb.Socket)
	p("socket_group = \"\"")
	p("")
	p("[metrics]")
	p("listen = %q", c.Metrics)
	p("")
	p("[health]")
	h := c.Health
	if h.Type == "" {
		h = LabCheck
	}
	p("jitter = 0.0")
	h.render(p)
	p("")
	p("[bgp]")
	p("asn = %d", LBASN)
	p("router_id = %q", lb.V4)
	p("api_listen = \"127.0.0.1:50051\"")
	p("graceful_restart = %v", c.GracefulRestart)
	p("restart_time = \"60s\"")
	p("startup_grace = \"5s\"")
	p("reannounce_delay = \"0s\"")
	for _, peer := range []struct {
		addr netip.Addr
		fam  string
	}{{RouterV4, "ipv4"}, {RouterV6, "ipv6"}} {
		p("")
		p("[[bgp.peer]]")
		p("address = %q", peer.addr)
		p("asn = %d", RouterASN)
		p("description = \"lab router %s\"", peer.fam)
		p("hold_time = \"9s\"")
		p("families = [%q]", peer.fam)
	}
	for _, v := range c.VIPs {
		p("")
		p("[[vip]]")
		p("address = %q", v.Addr)
		p("port = %d", v.Port)
		p("protocol = %q", v.Proto)
		if len(v.Flags) > 0 {
			p("flags = [%s]", quoteList(v.Flags))
		}
		if v.Health != nil {
			p("  [vip.health]")
			v.Health.render(func(format string, args ...any) { p("  "+format, args...) })
		}
		for _, r := range v.Reals {
			p("  [[vip.real]]")
			p("  address = %q", r.Addr)
			if r.Weight > 0 {
				p("  weight = %d", r.Weight)
			}
			if r.State != "" {
				p("  state = %q", r.State)
			}
		}
	}
	return b.String()
}

func (h Check) render(p func(string, ...any)) {
	if h.Type != "" {
		p("type = %q", h.Type)
	}
	if h.Path != "" {
		p("path = %q", h.Path)
	}
	if h.Payload != "" {
		p("payload = %q", h.Payload)
	}
	if h.ExpectReply {
		p("expect_reply = true")
	}
	if h.Interval > 0 {
		p("interval = %q", h.Interval.String())
	}
	if h.Timeout > 0 {
		p("timeout = %q", h.Timeout.String())
	}
	if h.Rise > 0 {
		p("rise = %d", h.Rise)
	}
	if h.Fall > 0 {
		p("fall = %d", h.Fall)
	}
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func realV4(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}) }
func realV6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:0:1::%d", 10+i))
}
