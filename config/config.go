// Package config reads vipcast's TOML configuration (etc/vipcast.toml),
// fills in defaults and validates it in one place.
//
// Parse and Load return either a fully validated *Config or one error that
// lists every problem found, each as
//
//	FILE:LINE:COL: FIELD.PATH: message, got VALUE
//
// for example
//
//	vipcast.toml:12:3: vip[2].real[0].weight: must be 0..65535, got -1
//
// Unknown keys, values of the wrong TOML type and invalid values are all
// reported that way. The typed Config holds parsed values (netip.Addr,
// time.Duration, ...): nothing downstream re-parses strings.
//
// The package is a leaf: it imports no other vipcast package, so lb, health,
// bgp and neigh never depend on it; the daemon translates.
package config

import (
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Config is a validated vipcast configuration. Build one with Parse, Load or
// Default; a Config changed in code should be checked with Validate.
type Config struct {
	// Interface is the NIC the balancer attaches to (required).
	Interface string
	// Mode is how the balancer attaches: alone, or into a root XDP
	// program's prog array.
	Mode Mode
	// RootMapPath is the pinned prog array of the root program (shared
	// mode only).
	RootMapPath string
	// ProgPosition is the balancer's slot in RootMapPath; NoProgPosition
	// when not set (shared mode requires it).
	ProgPosition int
	// XDPMode picks driver (native) or generic XDP in standalone mode.
	XDPMode XDPMode
	// GatewayMAC is the next hop of every encapsulated frame; nil means
	// "auto": resolve the default gateway's MAC.
	GatewayMAC net.HardwareAddr
	// ForwardingCores are the CPUs that get a connection table of their
	// own; nil means every online CPU.
	ForwardingCores []int
	// NUMANodes, when set, has one entry per ForwardingCores entry: the
	// node that CPU's table is allocated on.
	NUMANodes []int
	// LRUSize is the total number of connection-table entries, split over
	// the forwarding cores.
	LRUSize int
	// FallbackLRUSize sizes the table shared by CPUs without their own.
	FallbackLRUSize int
	// MaxVIPs and MaxReals size the data plane's tables; MaxReals counts
	// (VIP, real) pairs and one slot is reserved.
	MaxVIPs  int
	MaxReals int
	// TunnelMTU is the largest outer packet the balancer sends.
	TunnelMTU int
	// TunnelSourceV4 (a /16) and TunnelSourceV6 (a /96) hold the crafted
	// outer source addresses.
	TunnelSourceV4 netip.Prefix
	TunnelSourceV6 netip.Prefix
	// ICMPTooBig answers oversized VIP packets with ICMP too-big instead
	// of dropping them.
	ICMPTooBig bool
	// HCForwarding attaches the TC program that sends health checks
	// through the tunnel (by socket mark).
	HCForwarding bool
	// HCSourceV4 and HCSourceV6 are the outer source addresses of
	// encapsulated health checks; the zero Addr means the interface's own
	// address.
	HCSourceV4 netip.Addr
	HCSourceV6 netip.Addr
	// HCMarks is the range the health checker allocates socket marks
	// from, one per real address.
	HCMarks MarkRange

	API     API
	Metrics Metrics
	// Health is the check every real gets unless its VIP or itself
	// overrides fields of it.
	Health HealthCheck
	BGP    BGP
	VIPs   []VIP

	// src remembers where each key was written, so Validate can point at
	// lines; nil for a Config built in code.
	src *source
}

// NoProgPosition is Config.ProgPosition when no position is configured.
const NoProgPosition = -1

// Mode says how the balancer is attached to the interface.
type Mode string

const (
	// ModeStandalone attaches the balancer as the interface's XDP program.
	ModeStandalone Mode = "standalone"
	// ModeShared registers the balancer in a slot of a root XDP program's
	// prog array, behind whatever runs in the slots before it.
	ModeShared Mode = "shared"
)

// XDPMode is the XDP attach mode in standalone mode.
type XDPMode string

const (
	// XDPNative attaches in driver mode and fails if the driver cannot.
	XDPNative XDPMode = "native"
	// XDPGeneric attaches in generic (skb) mode: works everywhere, slower.
	XDPGeneric XDPMode = "generic"
	// XDPAuto tries native and falls back to generic, logging the mode.
	XDPAuto XDPMode = "auto"
)

// MarkRange is an inclusive range of socket marks.
type MarkRange struct {
	First, Last uint32
}

// Len is the number of marks in the range.
func (r MarkRange) Len() uint64 {
	if r.Last < r.First {
		return 0
	}
	return uint64(r.Last) - uint64(r.First) + 1
}

// String formats the range as the config file writes it: "10000-19999".
func (r MarkRange) String() string {
	return strconv.FormatUint(uint64(r.First), 10) + "-" + strconv.FormatUint(uint64(r.Last), 10)
}

// API is the vipcast gRPC API's unix socket.
type API struct {
	Socket string
	// SocketMode holds permission bits only (0 .. 0777).
	SocketMode fs.FileMode
	// SocketGroup owns the socket; "" leaves the daemon's group.
	SocketGroup string
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	// Listen is the HTTP address; the zero AddrPort turns metrics off.
	Listen netip.AddrPort
	// AllowRemote permits a Listen address that is not loopback.
	AllowRemote bool
}

// Enabled reports whether the metrics endpoint is served.
func (m Metrics) Enabled() bool { return m.Listen.IsValid() }

// CheckType is the kind of health check.
type CheckType string

const (
	CheckTCP   CheckType = "tcp"   // connect succeeds
	CheckHTTP  CheckType = "http"  // HTTP response with an expected status (and body)
	CheckHTTPS CheckType = "https" // the same over TLS
	CheckUDP   CheckType = "udp"   // payload sent; reply or no ICMP error (see ExpectReply)
	CheckICMP  CheckType = "icmp"  // echo reply
	CheckExec  CheckType = "exec"  // command exits 0
	CheckNone  CheckType = "none"  // no checks: the real counts as healthy
)

// usesPort reports whether the check connects to a port.
func (t CheckType) usesPort() bool {
	return t == CheckTCP || t == CheckHTTP || t == CheckHTTPS || t == CheckUDP
}

// HealthCheck is how one real is checked. The [health] table gives the
// defaults, [vip.health] overrides fields for a VIP's reals and
// [vip.real.health] for one real; every HealthCheck in a Config is fully
// resolved.
type HealthCheck struct {
	Type CheckType
	// Port is the port checked; 0 means the VIP's port.
	Port uint16
	// HTTP and HTTPS.
	Path   string
	Method string
	// Host is the Host header; "" means the VIP address.
	Host string
	// ExpectStatus lists the accepted status codes; nil accepts 200..399.
	ExpectStatus []int
	// BodyContains, when set, must occur in the response body.
	BodyContains string
	// SNI is the TLS server name; "" means Host (if set).
	SNI                string
	InsecureSkipVerify bool
	// Payload is sent by UDP checks.
	Payload string
	// ExpectReply makes a UDP check pass only on a reply within Timeout;
	// without it a check passes unless an ICMP error arrives in time.
	ExpectReply bool
	// Command is the argv of an exec check (the first element an
	// absolute path); the health package runs it with VIPCAST_* variables
	// naming the VIP, the real, the port and the mark.
	Command []string
	// Direct checks the real's own address instead of VIP:port through
	// the tunnel.
	Direct bool
	// MoveFlowsOnDown re-places a failed real's established flows on
	// other reals at once; by default they stay with it (a failed check
	// need not mean a dead connection) until it is removed or disabled.
	MoveFlowsOnDown bool
	// Interval between checks, Timeout of one check.
	Interval time.Duration
	Timeout  time.Duration
	// Rise consecutive passes bring a real up, Fall failures take it
	// down.
	Rise int
	Fall int
	// Jitter spreads checks: each interval is drawn from
	// Interval × [1-Jitter, 1+Jitter].
	Jitter float64
}

// BGP configures the embedded speaker. It runs when ASN is non-zero.
type BGP struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort accepts incoming sessions; 0 connects out only.
	ListenPort uint16
	// APIListen serves GoBGP's gRPC API (for the stock gobgp CLI); the
	// zero ListenAddr turns it off.
	APIListen      ListenAddr
	AllowRemoteAPI bool
	// GracefulRestart advertises the capability as a restarting speaker,
	// asking peers to keep routes for RestartTime.
	GracefulRestart bool
	RestartTime     time.Duration
	// StartupGrace bounds the wait for the first health round before
	// VIPs that are healthy by then are announced.
	StartupGrace time.Duration
	// AnnouncePolicy decides, per VIP address, whose health counts.
	AnnouncePolicy AnnouncePolicy
	// ReannounceDelay is how long a withdrawn (or deprioritized) VIP must
	// stay eligible before it is announced again: damps flapping reals.
	ReannounceDelay time.Duration
	// DrainTime is the wait between withdrawing every VIP and stopping,
	// for `vipcast drain` and, with DrainOnShutdown, SIGTERM.
	DrainTime       time.Duration
	DrainOnShutdown bool
	// Route holds the announce settings every VIP starts from.
	Route Route
	// Deprioritize is how an unhealthy VIP is re-announced when its
	// WhenUnhealthy is UnhealthyDeprioritize.
	Deprioritize Deprioritize
	Peers        []Peer
}

// Enabled reports whether the BGP speaker runs.
func (b *BGP) Enabled() bool { return b.ASN != 0 }

// AnnouncePolicy says which services of one address must be healthy for
// the address to be announced.
type AnnouncePolicy string

const (
	// AllServices announces an address while every service (VIP) on it
	// has at least its min_healthy reals up.
	AllServices AnnouncePolicy = "all_services"
	// AnyService announces an address while any service on it does.
	AnyService AnnouncePolicy = "any_service"
)

// WhenUnhealthy is what happens to the route of a VIP that stops being
// healthy.
type WhenUnhealthy string

const (
	UnhealthyWithdraw     WhenUnhealthy = "withdraw"
	UnhealthyDeprioritize WhenUnhealthy = "deprioritize"
)

// Route is how a VIP's address is announced.
type Route struct {
	// Announce false keeps the VIP out of BGP entirely.
	Announce bool
	// MinHealthy reals must be up for the VIP to count as healthy.
	MinHealthy       int
	Communities      []Community
	LargeCommunities []LargeCommunity
	// MED and LocalPref are sent when non-nil.
	MED           *uint32
	LocalPref     *uint32
	WhenUnhealthy WhenUnhealthy
}

// Deprioritize is what an unhealthy VIP's route carries instead of being
// withdrawn, so that another LB's route wins.
type Deprioritize struct {
	MED         *uint32
	Communities []Community
	// ASPathPrepend is how many extra times the local ASN is prepended.
	ASPathPrepend int
}

func (d *Deprioritize) isZero() bool {
	return d.MED == nil && len(d.Communities) == 0 && d.ASPathPrepend == 0
}

// Family is an address family a BGP session carries (unicast).
type Family string

const (
	FamilyIPv4 Family = "ipv4"
	FamilyIPv6 Family = "ipv6"
)

// Peer is one BGP neighbour.
type Peer struct {
	Address     netip.Addr
	ASN         uint32
	Description string
	// Password enables TCP MD5 signatures (RFC 2385) when set.
	Password string
	// MultihopTTL enables eBGP multihop with this TTL; 0 means directly
	// connected.
	MultihopTTL int
	// HoldTime 0 disables keepalives; otherwise Keepalive < HoldTime.
	HoldTime  time.Duration
	Keepalive time.Duration
	Passive   bool
	// Families default to the peer address's own family.
	Families []Family
	Port     uint16

	origin string // path in the file, e.g. "bgp.peer[1]"; "" if not from a file
}

// Protocol is a VIP's transport protocol.
type Protocol string

const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Number is the IP protocol number.
func (p Protocol) Number() uint8 {
	switch p {
	case TCP:
		return 6
	case UDP:
		return 17
	}
	return 0
}

// VIPFlags change how a VIP hashes flows and uses the connection table.
type VIPFlags struct {
	// NoSrcPort hashes without the client's source port.
	NoSrcPort bool
	// LRUBypass never uses the connection table.
	LRUBypass bool
	// DportOnly hashes on the destination port only.
	DportOnly bool
}

// Names lists the set flags by their config names.
func (f VIPFlags) Names() []string {
	var names []string
	if f.NoSrcPort {
		names = append(names, FlagNoSrcPort)
	}
	if f.LRUBypass {
		names = append(names, FlagLRUBypass)
	}
	if f.DportOnly {
		names = append(names, FlagDportOnly)
	}
	return names
}

// Flag names as the config file (and lb.ParseFlags) spell them.
const (
	FlagNoSrcPort = "no_src_port"
	FlagLRUBypass = "lru_bypass"
	FlagDportOnly = "dport_only"
)

// DefaultRingSize is a VIP's Maglev ring size unless configured (prime).
const DefaultRingSize = 65537

// MaxRingSize bounds ring_size (the data plane's limit).
const MaxRingSize = 1 << 24

// MaxWeight bounds a real's weight.
const MaxWeight = 65535

// VIP is one service: address, port and protocol, with its reals.
type VIP struct {
	Address netip.Addr
	// Port 0 serves every port of Address.
	Port     uint16
	Protocol Protocol
	Flags    VIPFlags
	RingSize uint32
	// Health is the resolved check of this VIP's reals.
	Health HealthCheck
	// BGP is the resolved announce settings of this VIP.
	BGP   Route
	Reals []Real

	origin string // path in the file, e.g. "vip[2]"; "" if not from a file
}

// VIPKey identifies a VIP: two VIPs with equal keys are the same service.
type VIPKey struct {
	Address  netip.Addr
	Port     uint16
	Protocol Protocol
}

// String formats the key the way the CLI reads it: 203.0.113.1:80/tcp,
// [2001:db8::1]:443/tcp.
func (k VIPKey) String() string {
	return netip.AddrPortFrom(k.Address, k.Port).String() + "/" + string(k.Protocol)
}

// Key returns the VIP's identity, for diffing VIP sets across reloads.
func (v *VIP) Key() VIPKey {
	return VIPKey{Address: v.Address, Port: v.Port, Protocol: v.Protocol}
}

// Check returns the resolved health check of r, one of v's reals.
func (v *VIP) Check(r *Real) HealthCheck {
	if r.Health != nil {
		return *r.Health
	}
	return v.Health
}

// RealState is the operator's say on a real; health checks decide within
// it.
type RealState string

const (
	// RealUp takes new flows while its checks pass.
	RealUp RealState = "up"
	// RealDrain takes no new flows; established flows stay.
	RealDrain RealState = "drain"
	// RealDisabled is out of service and not checked.
	RealDisabled RealState = "disabled"
)

// Real is a backend of a VIP.
type Real struct {
	Address netip.Addr
	// Weight 0 takes no new flows.
	Weight uint32
	State  RealState
	// Health, when non-nil, is this real's own resolved check; nil means
	// the VIP's.
	Health *HealthCheck

	origin string // path in the file, e.g. "vip[2].real[0]"; "" if not from a file
}

// Default returns the configuration of an empty file: no VIPs, no peers,
// BGP off, and no Interface (which Validate requires).
func Default() *Config {
	return &Config{
		Mode:            ModeStandalone,
		ProgPosition:    NoProgPosition,
		XDPMode:         XDPNative,
		LRUSize:         1_000_000,
		FallbackLRUSize: 65_536,
		MaxVIPs:         512,
		MaxReals:        4096,
		TunnelMTU:       1500,
		TunnelSourceV4:  netip.MustParsePrefix("172.16.0.0/16"),
		TunnelSourceV6:  netip.MustParsePrefix("100::/96"),
		ICMPTooBig:      true,
		HCForwarding:    true,
		HCMarks:         MarkRange{First: 10000, Last: 19999},
		API: API{
			Socket:      "/run/vipcast/vipcast.sock",
			SocketMode:  0o660,
			SocketGroup: "vipcast",
		},
		Metrics: Metrics{
			Listen: netip.MustParseAddrPort("127.0.0.1:9641"),
		},
		Health: HealthCheck{
			Type:     CheckTCP,
			Path:     "/",
			Method:   "GET",
			Interval: time.Second,
			Timeout:  time.Second,
			Rise:     2,
			Fall:     3,
			Jitter:   0.1,
		},
		BGP: BGP{
			APIListen:       ListenAddr{TCP: netip.MustParseAddrPort("127.0.0.1:50051")},
			GracefulRestart: true,
			RestartTime:     120 * time.Second,
			StartupGrace:    30 * time.Second,
			AnnouncePolicy:  AllServices,
			ReannounceDelay: time.Second,
			DrainTime:       10 * time.Second,
			Route: Route{
				Announce:      true,
				MinHealthy:    1,
				WhenUnhealthy: UnhealthyWithdraw,
			},
		},
	}
}

// Default peer settings.
const (
	defaultPeerPort  = 179
	defaultHoldTime  = 90 * time.Second
	holdToKeepalive  = 3 // keepalive defaults to hold_time / 3 (RFC 4271)
	defaultRealState = RealUp
)

func defaultPeer() Peer {
	return Peer{
		HoldTime:  defaultHoldTime,
		Keepalive: defaultHoldTime / holdToKeepalive,
		Port:      defaultPeerPort,
	}
}

func defaultReal() Real {
	return Real{Weight: 1, State: defaultRealState}
}
