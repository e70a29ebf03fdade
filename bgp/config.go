package bgp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	gobgp "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// Defaults applied by Config.withDefaults. GoBGP's own defaults (hold time
// 90 s, connect retry 120 s) are kept where they are sane for an LB; the
// connect retry is shortened because a router that reboots should get its
// VIPs back within seconds, not two minutes.
const (
	DefaultAPIListen    = "127.0.0.1:50051"
	DefaultRestartTime  = 120 * time.Second
	DefaultConnectRetry = 5 * time.Second
	// APIOff disables GoBGP's gRPC API (tests, or a daemon that wants none).
	APIOff = "off"
)

// Address families a peer can carry.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Config is everything the speaker needs, as plain values; the daemon
// translates its TOML into this.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // must be IPv4 (BGP identifier is 32 bits)
	// ListenPort: 0 or -1 = do not listen, connect out only (GoBGP
	// expresses that as ListenPort -1; its 0 would mean 179).
	ListenPort int32
	// APIListen is where GoBGP's gRPC API is served, for the stock
	// `gobgp` CLI: loopback "host:port" or "unix:///path". "" means
	// DefaultAPIListen, APIOff disables it. Anything else is refused
	// unless AllowRemoteAPI: the API can reconfigure the speaker.
	APIListen      string
	AllowRemoteAPI bool

	Peers []Peer

	// GracefulRestart advertises the RFC 4724 capability to every peer,
	// so peers keep our routes for RestartTime while vipcastd restarts.
	GracefulRestart bool
	RestartTime     time.Duration // default DefaultRestartTime, max 4095 s
	// Restarting sets the Restart State bit: this process took over from
	// a previous one whose routes peers still hold stale. GoBGP then
	// waits for End-of-RIB from every GR peer (or the deferral timer,
	// RestartTime) before it sends updates, so the peer swaps the stale
	// routes for ours in one go.
	Restarting bool

	// Default path attributes of every announced VIP; Attrs override
	// them per VIP.
	Communities      []string // "65000:100" or a well-known name ("no-export")
	LargeCommunities []string // "65000:1:2"
	MED              *uint32
	LocalPref        *uint32 // sent to iBGP peers only (GoBGP strips it for eBGP)

	// NextHopV4/V6: next hop of announced IPv4/IPv6 VIPs. Zero (the
	// default) means "the local address of each session" (next-hop-self;
	// GoBGP fills in the session's address when a locally originated
	// path carries 0.0.0.0 / ::). Set them when a family runs over a
	// session of the other family (an IPv6 VIP over an IPv4 session has
	// no IPv6 local address to use).
	NextHopV4 netip.Addr
	NextHopV6 netip.Addr
}

// Peer is one BGP neighbor (an upstream router).
type Peer struct {
	Address     netip.Addr
	ASN         uint32
	Description string
	Password    string // TCP MD5 (RFC 2385); needs kernel CONFIG_TCP_MD5SIG
	MultihopTTL uint8  // eBGP multihop TTL; 0 = directly connected (TTL 1)
	HoldTime    time.Duration
	Keepalive   time.Duration // default HoldTime/3
	// ConnectRetry is the interval between connection attempts; default
	// DefaultConnectRetry.
	ConnectRetry time.Duration
	Passive      bool     // never connect out; wait for the peer
	Families     []string // FamilyIPv4, FamilyIPv6; default: the family of Address
	Port         uint16   // remote port; default 179
}

// Attrs are per-VIP path attributes. A nil field keeps the Config default;
// a non-nil empty slice removes the default communities for this VIP.
type Attrs struct {
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large_communities,omitempty"`
	MED              *uint32  `json:"med,omitempty"`
	LocalPref        *uint32  `json:"local_pref,omitempty"`
	// Prepend adds our ASN this many extra times to the AS path, so that
	// another LB wins ("deprioritize" instead of withdraw).
	Prepend uint8 `json:"prepend,omitempty"`
}

// withDefaults returns a copy with defaults filled in; cfg is not changed.
func (c Config) withDefaults() Config {
	if c.APIListen == "" {
		c.APIListen = DefaultAPIListen
	}
	if c.ListenPort == 0 {
		c.ListenPort = -1
	}
	if c.RestartTime == 0 {
		c.RestartTime = DefaultRestartTime
	}
	c.Peers = slices.Clone(c.Peers)
	for i := range c.Peers {
		c.Peers[i] = c.Peers[i].withDefaults()
	}
	return c
}

func (p Peer) withDefaults() Peer {
	if len(p.Families) == 0 {
		if p.Address.Is4() {
			p.Families = []string{FamilyIPv4}
		} else {
			p.Families = []string{FamilyIPv6}
		}
	}
	if p.ConnectRetry == 0 {
		p.ConnectRetry = DefaultConnectRetry
	}
	if p.Port == 0 {
		p.Port = 179
	}
	return p
}

// Validate checks the configuration; the error names the field and value.
// All problems are reported, joined.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.ASN == 0 || c.ASN == 23456 || c.ASN == math.MaxUint32 {
		bad("bgp: asn %d is not usable (0, 23456 and 4294967295 are reserved)", c.ASN)
	}
	if !c.RouterID.IsValid() {
		bad("bgp: router_id is missing")
	} else if !c.RouterID.Is4() || c.RouterID.IsUnspecified() || c.RouterID.IsMulticast() {
		bad("bgp: router_id %s must be a non-zero unicast IPv4 address", c.RouterID)
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		bad("bgp: listen_port %d out of range (0 or -1 = do not listen, 1-65535)", c.ListenPort)
	}
	if err := validateAPIListen(c.APIListen, c.AllowRemoteAPI); err != nil {
		errs = append(errs, err)
	}
	if c.RestartTime < time.Second || c.RestartTime > 4095*time.Second {
		bad("bgp: restart_time %s out of range (1s-4095s)", c.RestartTime)
	}
	if c.Restarting && !c.GracefulRestart {
		bad("bgp: restarting needs graceful_restart")
	}
	if _, err := parseCommunities(c.Communities); err != nil {
		bad("bgp: communities: %w", err)
	}
	if _, err := parseLargeCommunities(c.LargeCommunities); err != nil {
		bad("bgp: large_communities: %w", err)
	}
	if c.NextHopV4.IsValid() && (!c.NextHopV4.Is4() || c.NextHopV4.IsUnspecified() || c.NextHopV4.IsMulticast()) {
		bad("bgp: next_hop_v4 %s must be a unicast IPv4 address", c.NextHopV4)
	}
	if c.NextHopV6.IsValid() && (!c.NextHopV6.Is6() || c.NextHopV6.Is4In6() || c.NextHopV6.IsUnspecified() || c.NextHopV6.IsMulticast()) {
		bad("bgp: next_hop_v6 %s must be a unicast IPv6 address", c.NextHopV6)
	}
	seen := make(map[netip.Addr]int)
	for i, p := range c.Peers {
		if j, dup := seen[p.Address]; dup && p.Address.IsValid() {
			bad("bgp: peers[%d] %s: duplicate of peers[%d]", i, p.Address, j)
			continue
		}
		seen[p.Address] = i
		if err := p.validate(c); err != nil {
			errs = append(errs, fmt.Errorf("bgp: peers[%d] %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (p Peer) validate(c Config) error {
	var errs []error
	name := p.Address.String()
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %w", name, fmt.Errorf(format, args...)))
	}
	switch {
	case !p.Address.IsValid():
		return errors.New("address is missing")
	case p.Address.Is4In6():
		bad("address is IPv4-mapped; write it as %s", p.Address.Unmap())
	case p.Address.IsUnspecified() || p.Address.IsMulticast():
		bad("address must be unicast")
	case p.Address.Zone() != "":
		bad("link-local addresses with a zone are not supported")
	}
	if p.ASN == 0 || p.ASN == 23456 || p.ASN == math.MaxUint32 {
		bad("asn %d is not usable", p.ASN)
	}
	if p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second) {
		bad("hold_time %s must be 0 (default 90s) or 3s-65535s", p.HoldTime)
	}
	if p.HoldTime%time.Second != 0 || p.Keepalive%time.Second != 0 || p.ConnectRetry%time.Second != 0 {
		bad("timers must be whole seconds (hold_time %s, keepalive %s, connect_retry %s)", p.HoldTime, p.Keepalive, p.ConnectRetry)
	}
	hold := p.HoldTime
	if hold == 0 {
		hold = 90 * time.Second
	}
	if p.Keepalive < 0 || p.Keepalive >= hold {
		bad("keepalive %s must be below hold_time %s", p.Keepalive, hold)
	}
	if p.ConnectRetry < time.Second {
		bad("connect_retry %s must be at least 1s", p.ConnectRetry)
	}
	if p.MultihopTTL > 0 && p.ASN == c.ASN {
		bad("multihop_ttl applies to eBGP only (peer asn %d is our own)", p.ASN)
	}
	if len(p.Password) > 80 {
		bad("password longer than 80 bytes (TCP_MD5SIG_MAXKEYLEN)")
	}
	seen := map[string]bool{}
	for _, f := range p.Families {
		switch f {
		case FamilyIPv4:
			if p.Address.Is6() && !c.NextHopV4.IsValid() {
				bad("family ipv4 over an IPv6 session needs next_hop_v4 (the session has no IPv4 address to use)")
			}
		case FamilyIPv6:
			if p.Address.Is4() && !c.NextHopV6.IsValid() {
				bad("family ipv6 over an IPv4 session needs next_hop_v6 (the session has no IPv6 address to use)")
			}
		default:
			bad("family %q unknown (want %q or %q)", f, FamilyIPv4, FamilyIPv6)
		}
		if seen[f] {
			bad("family %q listed twice", f)
		}
		seen[f] = true
	}
	return errors.Join(errs...)
}

// validateAPIListen accepts loopback TCP ("127.0.0.1:50051", "[::1]:50051",
// "localhost:50051"), "unix:///abs/path" and APIOff; any other TCP address
// only with allowRemote.
func validateAPIListen(s string, allowRemote bool) error {
	if s == APIOff {
		return nil
	}
	if path, ok := strings.CutPrefix(s, "unix://"); ok {
		if !strings.HasPrefix(path, "/") {
			return fmt.Errorf("bgp: api_listen %q: unix socket path must be absolute (unix:///run/...)", s)
		}
		return nil
	}
	if strings.Contains(s, ",") {
		return fmt.Errorf("bgp: api_listen %q: one address only", s)
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return fmt.Errorf("bgp: api_listen %q: %w", s, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("bgp: api_listen %q: bad port %q", s, port)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if allowRemote {
			return nil // a host name; the listener resolves it
		}
		return fmt.Errorf("bgp: api_listen %q: host must be a loopback IP address", s)
	}
	if !ip.IsLoopback() && !allowRemote {
		return fmt.Errorf("bgp: api_listen %q is not loopback; the GoBGP API can change routing, set allow_remote_api to expose it", s)
	}
	return nil
}

func splitHostPort(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", errors.New("want host:port")
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", "", errors.New("IPv6 hosts need brackets: [::1]:50051")
	}
	return host, port, nil
}

// parseCommunities turns "65000:100" or well-known names into values.
func parseCommunities(in []string) ([]uint32, error) {
	out := make([]uint32, 0, len(in))
	for _, s := range in {
		if v, ok := gobgp.WellKnownCommunityValueMap[strings.ToLower(s)]; ok {
			out = append(out, uint32(v))
			continue
		}
		a, b, ok := strings.Cut(s, ":")
		hi, err1 := strconv.ParseUint(a, 10, 16)
		lo, err2 := strconv.ParseUint(b, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("community %q: want ASN:VALUE with two 16-bit numbers, or a well-known name", s)
		}
		out = append(out, uint32(hi)<<16|uint32(lo))
	}
	return out, nil
}

func parseLargeCommunities(in []string) ([]*gobgp.LargeCommunity, error) {
	out := make([]*gobgp.LargeCommunity, 0, len(in))
	for _, s := range in {
		lc, err := gobgp.ParseLargeCommunity(s)
		if err != nil {
			return nil, fmt.Errorf("large community %q: want ASN:DATA1:DATA2 with three 32-bit numbers", s)
		}
		out = append(out, lc)
	}
	return out, nil
}

// validateAttrs checks per-VIP attributes.
func validateAttrs(a Attrs) error {
	if _, err := parseCommunities(a.Communities); err != nil {
		return err
	}
	if _, err := parseLargeCommunities(a.LargeCommunities); err != nil {
		return err
	}
	if a.Prepend > 16 {
		return fmt.Errorf("prepend %d: at most 16", a.Prepend)
	}
	return nil
}
