package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads and parses the file at path; errors name the file as given.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a TOML document, fills in defaults and validates the
// result. name is used as FILE in error messages. The error, if any, is a
// *ValidationError listing every problem.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, nil)
}

// parse is Parse that, given a schema map, records in it every key path
// the decoder asks for, indices removed ("vip.real.weight").
func parse(name string, data []byte, schema map[string]bool) (*Config, error) {
	doc := string(data)
	var tree map[string]any
	if _, err := toml.Decode(doc, &tree); err != nil {
		return nil, &ValidationError{Errors: []*FieldError{syntaxError(name, doc, err)}}
	}
	d := &decoder{file: name, pos: scanPositions(doc), schema: schema}
	cfg := d.config(d.root(tree))
	cfg.src = &source{file: name, pos: d.pos}

	errs := d.errs
	failed := newFailedSet(d.errs)
	for _, fe := range cfg.validate() {
		// A value that failed to decode kept its default; whatever
		// validation says about it would only repeat the problem.
		if failed.covers(fe.origin) || slices.ContainsFunc(fe.after, failed.covers) {
			continue
		}
		errs = append(errs, fe)
	}
	if err := newValidationError(errs); err != nil {
		return nil, err
	}
	return cfg, nil
}

// source is where a parsed Config came from.
type source struct {
	file string
	pos  positions
}

// failedSet holds the paths of values that failed to decode.
type failedSet struct {
	paths map[string]bool
	lists map[string]bool // lists with a bad element, which are dropped whole
}

func newFailedSet(decodeErrs []*FieldError) failedSet {
	f := failedSet{paths: map[string]bool{}, lists: map[string]bool{}}
	for _, de := range decodeErrs {
		f.paths[de.origin] = true
		for p := de.origin; strings.HasSuffix(p, "]"); {
			p = parentPath(p)
			f.lists[p] = true
		}
	}
	return f
}

// covers reports whether a problem at path follows from a decode error at
// path itself, at one of its ancestors, or at an element of the list at
// path.
func (f failedSet) covers(path string) bool {
	if path == "" {
		return false
	}
	if f.lists[path] {
		return true
	}
	for p := path; p != ""; p = parentPath(p) {
		if f.paths[p] {
			return true
		}
	}
	return false
}

// syntaxError turns the library's error into a FieldError with a column
// computed from the byte offset.
func syntaxError(name, doc string, err error) *FieldError {
	fe := &FieldError{File: name, Message: "invalid TOML: " + err.Error()}
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return fe
	}
	fe.Message = "invalid TOML: " + pe.Message
	fe.Line, fe.Column = pe.Position.Line, pe.Position.Col
	if start := pe.Position.Start; start >= 0 && start <= len(doc) {
		fe.Line = strings.Count(doc[:start], "\n") + 1
		fe.Column = start - (strings.LastIndexByte(doc[:start], '\n') + 1) + 1
	}
	return fe
}

// Bounds shared by decoding and Validate.
const (
	maxProgPosition = 255
	maxCPUs         = 8192 // Linux's largest NR_CPUS in distribution kernels
	maxNUMANodes    = 1024 // MAX_NUMNODES with NODES_SHIFT = 10
	maxTableSize    = 1 << 28
	maxVIPs         = 1 << 16
	maxReals        = 1 << 20
	minTunnelMTU    = 1280 // IPv6's minimum link MTU
	maxTunnelMTU    = 9216 // jumbo frames
	maxRiseFall     = 1000
	maxJitter       = 0.5
	maxASPrepend    = 16
	maxMD5Key       = 80 // TCP_MD5SIG_MAXKEYLEN
	minRingSize     = 3
)

const (
	ringSizeMsg   = "must be a prime number in 3..16777216"
	markRangeMsg  = `must be "FIRST-LAST" with 1 <= FIRST <= LAST <= 4294967295`
	gatewayMACMsg = `must be "auto" or a unicast Ethernet address such as "52:54:00:12:35:02"`
	socketModeMsg = `must be an octal permission string such as "0660" (at most "0777")`
	metricsMsg    = `must be "IP:PORT" (IPv6 in brackets), or "" for no metrics endpoint`
)

func (d *decoder) config(t *table) *Config {
	c := Default()
	t.setString("interface", &c.Interface)
	setEnum(t, "mode", &c.Mode, ModeStandalone, ModeShared)
	t.setString("root_map_path", &c.RootMapPath)
	t.setInt("prog_position", 0, maxProgPosition, &c.ProgPosition)
	setEnum(t, "xdp_mode", &c.XDPMode, XDPNative, XDPGeneric, XDPAuto)
	if s, path, ok := t.str("gateway_mac"); ok {
		if s == "auto" {
			c.GatewayMAC = nil
		} else if mac, err := net.ParseMAC(s); err == nil {
			c.GatewayMAC = mac
		} else {
			d.fail(path, s, gatewayMACMsg)
		}
	}
	t.setInts("forwarding_cores", 0, maxCPUs-1, &c.ForwardingCores)
	t.setInts("numa_nodes", 0, maxNUMANodes-1, &c.NUMANodes)
	t.setInt("lru_size", 1, maxTableSize, &c.LRUSize)
	t.setInt("fallback_lru_size", 1, maxTableSize, &c.FallbackLRUSize)
	t.setInt("max_vips", 1, maxVIPs, &c.MaxVIPs)
	t.setInt("max_reals", 2, maxReals, &c.MaxReals)
	t.setInt("tunnel_mtu", minTunnelMTU, maxTunnelMTU, &c.TunnelMTU)
	t.setPrefix("tunnel_source_v4", &c.TunnelSourceV4)
	t.setPrefix("tunnel_source_v6", &c.TunnelSourceV6)
	t.setBool("icmp_too_big", &c.ICMPTooBig)
	t.setBool("hc_forwarding", &c.HCForwarding)
	t.setOptAddr("hc_source_v4", &c.HCSourceV4)
	t.setOptAddr("hc_source_v6", &c.HCSourceV6)
	if s, path, ok := t.str("hc_mark_range"); ok {
		if r, err := parseMarkRange(s); err == nil {
			c.HCMarks = r
		} else {
			d.fail(path, s, markRangeMsg)
		}
	}
	if at := t.sub("api"); at != nil {
		d.api(at, &c.API)
	}
	if mt := t.sub("metrics"); mt != nil {
		d.metrics(mt, &c.Metrics)
	}
	// [health] and [bgp] are decoded before the VIPs, which inherit them.
	if ht := t.sub("health"); ht != nil {
		c.Health = d.health(ht, c.Health)
	}
	if bt := t.sub("bgp"); bt != nil {
		d.bgp(bt, &c.BGP)
	}
	for _, vt := range t.subs("vip") {
		c.VIPs = append(c.VIPs, d.vip(vt, c))
	}
	t.done()
	if len(c.ForwardingCores) == 0 {
		c.ForwardingCores = nil
	}
	if len(c.NUMANodes) == 0 {
		c.NUMANodes = nil
	}
	return c
}

func (d *decoder) api(t *table, a *API) {
	t.setString("socket", &a.Socket)
	if s, path, ok := t.str("socket_mode"); ok {
		if m, err := strconv.ParseUint(s, 8, 32); err == nil && m <= 0o777 {
			a.SocketMode = fs.FileMode(m)
		} else {
			d.fail(path, s, socketModeMsg)
		}
	}
	t.setString("socket_group", &a.SocketGroup)
	t.done()
}

func (d *decoder) metrics(t *table, m *Metrics) {
	if s, path, ok := t.str("listen"); ok {
		if s == "" {
			m.Listen = netip.AddrPort{}
		} else if ap, err := netip.ParseAddrPort(s); err == nil {
			m.Listen = ap
		} else {
			d.fail(path, s, metricsMsg)
		}
	}
	t.setBool("allow_remote", &m.AllowRemote)
	t.done()
}

// health decodes a [health] table over base, the check it overrides.
func (d *decoder) health(t *table, base HealthCheck) HealthCheck {
	h := base
	h.ExpectStatus = slices.Clone(base.ExpectStatus)
	h.Command = slices.Clone(base.Command)
	setEnum(t, "type", &h.Type, CheckTCP, CheckHTTP, CheckHTTPS, CheckUDP, CheckICMP, CheckExec, CheckNone)
	t.setUint16("port", 0, math.MaxUint16, &h.Port)
	t.setString("path", &h.Path)
	t.setString("method", &h.Method)
	t.setString("host", &h.Host)
	t.setInts("expect_status", 100, 599, &h.ExpectStatus)
	t.setString("body_contains", &h.BodyContains)
	t.setString("sni", &h.SNI)
	t.setBool("insecure_skip_verify", &h.InsecureSkipVerify)
	t.setString("payload", &h.Payload)
	t.setBool("expect_reply", &h.ExpectReply)
	t.setStrings("command", &h.Command)
	t.setBool("direct", &h.Direct)
	t.setBool("move_flows_on_down", &h.MoveFlowsOnDown)
	t.setDuration("interval", &h.Interval)
	t.setDuration("timeout", &h.Timeout)
	t.setInt("rise", 1, maxRiseFall, &h.Rise)
	t.setInt("fall", 1, maxRiseFall, &h.Fall)
	t.setFloat("jitter", &h.Jitter)
	t.done()
	if len(h.ExpectStatus) == 0 {
		h.ExpectStatus = nil
	}
	if len(h.Command) == 0 {
		h.Command = nil
	}
	return h
}

func (d *decoder) bgp(t *table, b *BGP) {
	t.setUint32("asn", 1, math.MaxUint32, &b.ASN)
	t.setAddr("router_id", &b.RouterID)
	t.setUint16("listen_port", 0, math.MaxUint16, &b.ListenPort)
	if s, path, ok := t.str("api_listen"); ok {
		if l, err := ParseListenAddr(s); err == nil {
			b.APIListen = l
		} else {
			d.fail(path, s, "%v", err)
		}
	}
	t.setBool("allow_remote_api", &b.AllowRemoteAPI)
	t.setBool("graceful_restart", &b.GracefulRestart)
	t.setDuration("restart_time", &b.RestartTime)
	t.setDuration("startup_grace", &b.StartupGrace)
	setEnum(t, "announce_policy", &b.AnnouncePolicy, AllServices, AnyService)
	t.setDuration("reannounce_delay", &b.ReannounceDelay)
	t.setDuration("drain_time", &b.DrainTime)
	t.setBool("drain_on_shutdown", &b.DrainOnShutdown)
	d.route(t, &b.Route, false)
	if dt := t.sub("deprioritize"); dt != nil {
		dt.setOptUint32("med", &b.Deprioritize.MED)
		d.communities(dt, &b.Deprioritize.Communities)
		dt.setInt("as_path_prepend", 0, maxASPrepend, &b.Deprioritize.ASPathPrepend)
		dt.done()
	}
	for _, pt := range t.subs("peer") {
		b.Peers = append(b.Peers, d.peer(pt))
	}
	t.done()
}

// route decodes announce settings over r: the keys of [bgp] that every
// VIP inherits, or a [vip.bgp] table.
func (d *decoder) route(t *table, r *Route, perVIP bool) {
	if perVIP {
		t.setBool("announce", &r.Announce)
	}
	t.setInt("min_healthy", 1, math.MaxInt32, &r.MinHealthy)
	d.communities(t, &r.Communities)
	var large []LargeCommunity
	if t.strings("large_communities", func(path, s string) bool {
		lc, err := ParseLargeCommunity(s)
		if err != nil {
			d.fail(path, s, "%v", err)
			return false
		}
		large = append(large, lc)
		return true
	}) {
		r.LargeCommunities = large
	}
	t.setOptUint32("med", &r.MED)
	t.setOptUint32("local_pref", &r.LocalPref)
	setEnum(t, "when_unhealthy", &r.WhenUnhealthy, UnhealthyWithdraw, UnhealthyDeprioritize)
}

func (d *decoder) communities(t *table, dst *[]Community) {
	var list []Community
	if t.strings("communities", func(path, s string) bool {
		c, err := ParseCommunity(s)
		if err != nil {
			d.fail(path, s, "%v", err)
			return false
		}
		list = append(list, c)
		return true
	}) {
		*dst = list
	}
}

func (d *decoder) peer(t *table) Peer {
	p := defaultPeer()
	p.origin = t.path
	t.setAddr("address", &p.Address)
	t.setUint32("asn", 1, math.MaxUint32, &p.ASN)
	t.setString("description", &p.Description)
	t.setString("password", &p.Password)
	t.setInt("multihop_ttl", 0, 255, &p.MultihopTTL)
	t.setDuration("hold_time", &p.HoldTime)
	_, keepaliveSet := t.m["keepalive"]
	t.setDuration("keepalive", &p.Keepalive)
	if !keepaliveSet {
		p.Keepalive = p.HoldTime / holdToKeepalive
	}
	t.setBool("passive", &p.Passive)
	var families []Family
	if t.strings("families", func(path, s string) bool {
		f := Family(s)
		switch {
		case f != FamilyIPv4 && f != FamilyIPv6:
			d.fail(path, s, "must be %s", oneOf([]Family{FamilyIPv4, FamilyIPv6}))
			return false
		case slices.Contains(families, f):
			d.fail(path, s, "listed twice")
			return false
		}
		families = append(families, f)
		return true
	}) {
		p.Families = families
	}
	if _, set := t.m["families"]; !set && p.Address.IsValid() {
		p.Families = []Family{FamilyIPv6}
		if p.Address.Unmap().Is4() {
			p.Families = []Family{FamilyIPv4}
		}
	}
	t.setUint16("port", 1, math.MaxUint16, &p.Port)
	t.done()
	return p
}

func (d *decoder) vip(t *table, c *Config) VIP {
	v := VIP{
		Protocol: TCP,
		RingSize: DefaultRingSize,
		Health:   cloneHealth(c.Health),
		BGP:      cloneRoute(c.BGP.Route),
		origin:   t.path,
	}
	t.setAddr("address", &v.Address)
	t.require("port")
	t.setUint16("port", 0, math.MaxUint16, &v.Port)
	setEnum(t, "protocol", &v.Protocol, TCP, UDP)
	var flags VIPFlags
	if t.strings("flags", func(path, s string) bool {
		var f *bool
		switch s {
		case FlagNoSrcPort:
			f = &flags.NoSrcPort
		case FlagLRUBypass:
			f = &flags.LRUBypass
		case FlagDportOnly:
			f = &flags.DportOnly
		default:
			d.fail(path, s, "must be %s", oneOf([]string{FlagNoSrcPort, FlagLRUBypass, FlagDportOnly}))
			return false
		}
		if *f {
			d.fail(path, s, "listed twice")
			return false
		}
		*f = true
		return true
	}) {
		v.Flags = flags
	}
	if n, ok := t.integer("ring_size", math.MinInt64, math.MaxInt64); ok {
		if n < minRingSize || n > MaxRingSize || !isPrime(uint64(n)) {
			d.fail(joinPath(t.path, "ring_size"), n, ringSizeMsg)
		} else {
			v.RingSize = uint32(n)
		}
	}
	if ht := t.sub("health"); ht != nil {
		v.Health = d.health(ht, c.Health)
	}
	if bt := t.sub("bgp"); bt != nil {
		d.route(bt, &v.BGP, true)
		bt.done()
	}
	for _, rt := range t.subs("real") {
		v.Reals = append(v.Reals, d.real(rt, &v))
	}
	t.done()
	return v
}

func (d *decoder) real(t *table, v *VIP) Real {
	r := defaultReal()
	r.origin = t.path
	t.setAddr("address", &r.Address)
	t.setUint32("weight", 0, MaxWeight, &r.Weight)
	setEnum(t, "state", &r.State, RealUp, RealDrain, RealDisabled)
	if ht := t.sub("health"); ht != nil {
		h := d.health(ht, v.Health)
		r.Health = &h
	}
	t.done()
	return r
}
