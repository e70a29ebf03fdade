package config

import (
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"
)

// Validate checks every rule and returns nil or a *ValidationError listing
// every problem. A parsed Config is already valid; call Validate after
// changing one in code. Problems in values that came from a file carry
// the file's line and column.
func (c *Config) Validate() error {
	return newValidationError(c.validate())
}

type validator struct {
	src  *source
	errs []*FieldError
}

// node is an object being validated: where it sits in the Config now
// (path, used in messages) and where it was written (origin, used to find
// the line). Only objects that came from the file have an origin.
type node struct {
	path     string
	origin   string
	fromFile bool
}

func (n node) child(field string) node {
	return node{path: subPath(n.path, field), origin: subPath(n.origin, field), fromFile: n.fromFile}
}

func subPath(parent, field string) string {
	switch {
	case parent == "":
		return field
	case field == "":
		return parent
	case strings.HasPrefix(field, "["):
		return parent + field
	}
	return parent + "." + field
}

func (v *validator) fail(n node, field string, value any, format string, args ...any) {
	v.failAfter(n, nil, field, value, format, args...)
}

// failAfter reports a problem that follows from other values, given as
// paths in the file: if one of those failed to decode, Parse drops this
// problem as a mere consequence.
func (v *validator) failAfter(n node, after []string, field string, value any, format string, args ...any) {
	fe := &FieldError{
		Field:   subPath(n.path, field),
		Message: fmt.Sprintf(format, args...),
		Value:   tomlValue(value),
	}
	if v.src != nil && n.fromFile {
		fe.origin = subPath(n.origin, field)
		fe.after = after
		p := v.src.pos.lookup(fe.origin)
		fe.File, fe.Line, fe.Column = v.src.file, p.line, p.col
	}
	v.errs = append(v.errs, fe)
}

// checkRange reports an integer outside lo..hi with the same message
// decoding uses.
func checkRange[T int | uint16 | uint32](v *validator, n node, field string, x T, lo, hi int64) {
	if int64(x) < lo || int64(x) > hi {
		v.fail(n, field, x, "%s", rangeMsg(lo, hi))
	}
}

func oneOfValue[T ~string](v *validator, n node, field string, x T, allowed ...T) {
	if !slices.Contains(allowed, x) {
		v.fail(n, field, x, "must be %s", oneOf(allowed))
	}
}

func (c *Config) validate() []*FieldError {
	v := &validator{src: c.src}
	root := node{fromFile: true}
	v.top(root, c)
	v.api(root.child("api"), &c.API)
	v.metrics(root.child("metrics"), &c.Metrics)
	v.health(root.child("health"), &c.Health, nil)
	v.bgp(root.child("bgp"), c)
	v.vips(root, c)
	return v.errs
}

func (v *validator) top(n node, c *Config) {
	switch {
	case c.Interface == "":
		v.fail(n, "interface", nil, "required: the network interface the balancer attaches to")
	case !validIfName(c.Interface):
		v.fail(n, "interface", c.Interface, "must be an interface name (1..15 characters, no '/', ':' or whitespace)")
	}

	oneOfValue(v, n, "mode", c.Mode, ModeStandalone, ModeShared)
	shared := c.Mode == ModeShared
	switch {
	case shared && c.RootMapPath == "":
		v.fail(n, "root_map_path", nil, `required when mode = "shared"`)
	case shared && !path.IsAbs(c.RootMapPath):
		v.fail(n, "root_map_path", c.RootMapPath, "must be an absolute path (of the pinned prog array)")
	case !shared && c.RootMapPath != "":
		v.fail(n, "root_map_path", c.RootMapPath, `only used when mode = "shared"`)
	}
	switch {
	case shared && c.ProgPosition == NoProgPosition:
		v.fail(n, "prog_position", nil, `required when mode = "shared"`)
	case c.ProgPosition != NoProgPosition && (c.ProgPosition < 0 || c.ProgPosition > maxProgPosition):
		v.fail(n, "prog_position", c.ProgPosition, "%s", rangeMsg(0, maxProgPosition))
	case !shared && c.ProgPosition != NoProgPosition:
		v.fail(n, "prog_position", c.ProgPosition, `only used when mode = "shared"`)
	}
	oneOfValue(v, n, "xdp_mode", c.XDPMode, XDPNative, XDPGeneric, XDPAuto)

	if mac := c.GatewayMAC; mac != nil && (len(mac) != 6 || mac[0]&1 != 0 || allZero(mac)) {
		v.fail(n, "gateway_mac", mac, gatewayMACMsg)
	}

	for i, cpu := range c.ForwardingCores {
		field := indexPath("forwarding_cores", i)
		if cpu < 0 || cpu >= maxCPUs {
			v.fail(n, field, cpu, "%s", rangeMsg(0, maxCPUs-1))
		} else if j := slices.Index(c.ForwardingCores[:i], cpu); j >= 0 {
			v.fail(n, field, cpu, "listed twice (also forwarding_cores[%d])", j)
		}
	}
	if c.NUMANodes != nil {
		if len(c.ForwardingCores) == 0 {
			v.fail(n, "numa_nodes", nil, "needs forwarding_cores: one node per listed core")
		} else if len(c.NUMANodes) != len(c.ForwardingCores) {
			v.fail(n, "numa_nodes", len(c.NUMANodes), "must have one entry per forwarding core (%d)", len(c.ForwardingCores))
		}
		for i, node := range c.NUMANodes {
			checkRange(v, n, indexPath("numa_nodes", i), node, 0, maxNUMANodes-1)
		}
	}

	checkRange(v, n, "lru_size", c.LRUSize, 1, maxTableSize)
	if c.LRUSize < len(c.ForwardingCores) {
		v.fail(n, "lru_size", c.LRUSize, "must be at least the number of forwarding cores (%d)", len(c.ForwardingCores))
	}
	checkRange(v, n, "fallback_lru_size", c.FallbackLRUSize, 1, maxTableSize)
	checkRange(v, n, "max_vips", c.MaxVIPs, 1, maxVIPs)
	if len(c.VIPs) > c.MaxVIPs {
		v.fail(n, "max_vips", c.MaxVIPs, "must be at least the number of VIPs (%d)", len(c.VIPs))
	}
	checkRange(v, n, "max_reals", c.MaxReals, 2, maxReals)
	pairs := 0
	for i := range c.VIPs {
		pairs += len(c.VIPs[i].Reals)
	}
	if pairs+1 > c.MaxReals {
		v.fail(n, "max_reals", c.MaxReals, "must be at least %d: one per (VIP, real) pair (%d) plus one reserved", pairs+1, pairs)
	}
	checkRange(v, n, "tunnel_mtu", c.TunnelMTU, minTunnelMTU, maxTunnelMTU)

	if p := c.TunnelSourceV4; !p.Addr().Is4() || p.Bits() != 16 || p.Masked() != p {
		v.fail(n, "tunnel_source_v4", p, `must be an IPv4 /16 such as "172.16.0.0/16" (no host bits)`)
	}
	if p := c.TunnelSourceV6; !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 96 || p.Masked() != p {
		v.fail(n, "tunnel_source_v6", p, `must be an IPv6 /96 such as "100::/96" (no host bits)`)
	}
	if a := c.HCSourceV4; a.IsValid() && (!a.Is4() || unicastProblem(a) != "") {
		v.fail(n, "hc_source_v4", a, `must be a unicast IPv4 address, or "" for the interface's address`)
	}
	if a := c.HCSourceV6; a.IsValid() && (!a.Is6() || a.Is4In6() || unicastProblem(a) != "") {
		v.fail(n, "hc_source_v6", a, `must be a unicast IPv6 address, or "" for the interface's address`)
	}
	if r := c.HCMarks; r.First == 0 || r.First > r.Last {
		v.fail(n, "hc_mark_range", r, markRangeMsg)
	} else if reals := distinctReals(c.VIPs); c.HCForwarding && r.Len() < uint64(reals) {
		v.fail(n, "hc_mark_range", r, "must hold one mark per distinct real address (%d)", reals)
	}
}

func (v *validator) api(n node, a *API) {
	if !path.IsAbs(a.Socket) {
		v.fail(n, "socket", a.Socket, "must be an absolute path")
	}
	if a.SocketMode&^fs.ModePerm != 0 {
		v.fail(n, "socket_mode", fmt.Sprintf("%04o", uint32(a.SocketMode)), socketModeMsg)
	}
	if g := a.SocketGroup; len(g) > 32 || strings.ContainsAny(g, ":/ \t\n") {
		v.fail(n, "socket_group", g, "must be a group name or number")
	}
}

func (v *validator) metrics(n node, m *Metrics) {
	if !m.Listen.IsValid() {
		return
	}
	switch {
	case m.Listen.Port() == 0:
		v.fail(n, "listen", m.Listen, "must have a port other than 0")
	case !m.AllowRemote && !m.Listen.Addr().IsLoopback():
		v.fail(n, "listen", m.Listen, "must be a loopback address unless metrics.allow_remote = true")
	}
}

// health checks a resolved check. parent is the check it inherits from
// (nil for [health]); a problem in an inherited value is reported once,
// where it was set, not again for every VIP and real.
func (v *validator) health(n node, h, parent *HealthCheck) {
	var p HealthCheck // what h inherits; zero for [health] itself
	if parent != nil {
		p = *parent
	}
	own := func(changed bool) bool { return parent == nil || changed }
	if own(h.Type != p.Type) {
		oneOfValue(v, n, "type", h.Type, CheckTCP, CheckHTTP, CheckHTTPS, CheckUDP, CheckICMP, CheckExec, CheckNone)
	}
	if own(h.Interval != p.Interval) && h.Interval <= 0 {
		v.fail(n, "interval", h.Interval, "must be positive")
	}
	if own(h.Timeout != p.Timeout) && h.Timeout <= 0 {
		v.fail(n, "timeout", h.Timeout, "must be positive")
	}
	if own(h.Interval != p.Interval || h.Timeout != p.Timeout) &&
		h.Timeout > 0 && h.Interval > 0 && h.Timeout > h.Interval {
		v.fail(n, "timeout", h.Timeout, "must not exceed interval (%q)", h.Interval)
	}
	if own(h.Rise != p.Rise) {
		checkRange(v, n, "rise", h.Rise, 1, maxRiseFall)
	}
	if own(h.Fall != p.Fall) {
		checkRange(v, n, "fall", h.Fall, 1, maxRiseFall)
	}
	if own(h.Jitter != p.Jitter) && !(h.Jitter >= 0 && h.Jitter <= maxJitter) {
		v.fail(n, "jitter", h.Jitter, "must be 0..%g (a fraction of interval)", maxJitter)
	}
	if h.Type == CheckHTTP || h.Type == CheckHTTPS {
		if own(h.Method != p.Method || h.Type != p.Type) && !validToken(h.Method) {
			v.fail(n, "method", h.Method, `must be an HTTP method such as "GET"`)
		}
		if own(h.Path != p.Path || h.Type != p.Type) && !strings.HasPrefix(h.Path, "/") {
			v.fail(n, "path", h.Path, `must start with "/"`)
		}
	}
	if own(!slices.Equal(h.ExpectStatus, p.ExpectStatus)) {
		for i, code := range h.ExpectStatus {
			checkRange(v, n, indexPath("expect_status", i), code, 100, 599)
		}
	}
	if h.Type == CheckExec && own(h.Type != p.Type || !slices.Equal(h.Command, p.Command)) {
		switch {
		case len(h.Command) == 0:
			v.fail(n, "command", nil, `required for an "exec" check`)
		case !path.IsAbs(h.Command[0]):
			v.fail(n, indexPath("command", 0), h.Command[0], "must be an absolute path")
		}
	}
}

func (v *validator) bgp(n node, c *Config) {
	b := &c.BGP
	if !b.Enabled() && len(b.Peers) > 0 {
		v.fail(n, "asn", nil, "required when peers are configured")
	}
	switch {
	case b.Enabled() && !b.RouterID.IsValid():
		v.fail(n, "router_id", nil, "required when bgp.asn is set")
	case b.RouterID.IsValid() && (!b.RouterID.Is4() || b.RouterID.IsUnspecified()):
		v.fail(n, "router_id", b.RouterID, "must be a non-zero IPv4 address")
	}
	if l := b.APIListen; l.TCP.IsValid() {
		switch {
		case l.TCP.Port() == 0:
			v.fail(n, "api_listen", l, "must have a port other than 0")
		case !b.AllowRemoteAPI && !l.TCP.Addr().IsLoopback():
			v.fail(n, "api_listen", l, "must be a loopback address or a unix socket unless bgp.allow_remote_api = true")
		}
	} else if l.Unix != "" && !path.IsAbs(l.Unix) {
		v.fail(n, "api_listen", l, `must be "unix:///absolute/path"`)
	}
	if t := b.RestartTime; t < time.Second || t > 4095*time.Second || t%time.Second != 0 {
		v.fail(n, "restart_time", t, `must be whole seconds in "1s".."4095s" (RFC 4724)`)
	}
	if b.StartupGrace <= 0 {
		v.fail(n, "startup_grace", b.StartupGrace, "must be positive")
	}
	oneOfValue(v, n, "announce_policy", b.AnnouncePolicy, AllServices, AnyService)
	if b.ReannounceDelay < 0 {
		v.fail(n, "reannounce_delay", b.ReannounceDelay, "must not be negative")
	}
	if b.DrainTime < 0 {
		v.fail(n, "drain_time", b.DrainTime, "must not be negative")
	}
	v.route(n, &b.Route, nil, nil)

	dn := n.child("deprioritize")
	checkRange(v, dn, "as_path_prepend", b.Deprioritize.ASPathPrepend, 0, maxASPrepend)
	deprioritized := b.Route.WhenUnhealthy == UnhealthyDeprioritize
	for i := range c.VIPs {
		deprioritized = deprioritized || c.VIPs[i].BGP.WhenUnhealthy == UnhealthyDeprioritize
	}
	if deprioritized && b.Deprioritize.isZero() {
		v.fail(dn, "", nil, `must set med, communities or as_path_prepend when when_unhealthy = "deprioritize"`)
	}

	for i := range b.Peers {
		p := &b.Peers[i]
		pn := node{path: indexPath("bgp.peer", i), origin: p.origin, fromFile: p.origin != ""}
		v.peer(pn, p)
		for j := range i {
			if b.Peers[j].Address == p.Address && p.Address.IsValid() {
				v.fail(pn, "address", p.Address, "duplicate of bgp.peer[%d]", j)
				break
			}
		}
	}
}

func (v *validator) peer(n node, p *Peer) {
	if !p.Address.IsValid() {
		v.fail(n, "address", nil, "required")
	} else if problem := unicastProblem(p.Address); problem != "" {
		v.fail(n, "address", p.Address, "%s", problem)
	}
	if p.ASN == 0 {
		v.fail(n, "asn", nil, "required")
	}
	checkRange(v, n, "multihop_ttl", p.MultihopTTL, 0, 255)
	if len(p.Password) > maxMD5Key {
		v.fail(n, "password", nil, "must be at most %d bytes (TCP MD5 key limit)", maxMD5Key)
	}
	hold, keep := p.HoldTime, p.Keepalive
	holdBad := hold != 0 && (hold < 3*time.Second || hold > 65535*time.Second || hold%time.Second != 0)
	switch {
	case holdBad:
		// keepalive is judged against a valid hold_time only.
		v.fail(n, "hold_time", hold, `must be "0s" or whole seconds in "3s".."65535s" (RFC 4271)`)
	case hold == 0 && keep != 0:
		v.fail(n, "keepalive", keep, `must be "0s" when hold_time is "0s"`)
	case hold != 0 && (keep < time.Second || keep >= hold || keep%time.Second != 0):
		v.fail(n, "keepalive", keep, "must be whole seconds, at least \"1s\" and less than hold_time (%q)", hold)
	}
	// Families default to the address's family, so without an address
	// their absence is no separate problem.
	if len(p.Families) == 0 && p.Address.IsValid() {
		v.fail(n, "families", nil, `must list "ipv4", "ipv6" or both`)
	}
	for i, f := range p.Families {
		field := indexPath("families", i)
		if f != FamilyIPv4 && f != FamilyIPv6 {
			v.fail(n, field, f, "must be %s", oneOf([]Family{FamilyIPv4, FamilyIPv6}))
		} else if slices.Contains(p.Families[:i], f) {
			v.fail(n, field, f, "listed twice")
		}
	}
	checkRange(v, n, "port", p.Port, 1, 65535)
}

// route checks announce settings; parent and vip as for health.
func (v *validator) route(n node, r, parent *Route, vip *VIP) {
	if parent == nil || r.MinHealthy != parent.MinHealthy {
		checkRange(v, n, "min_healthy", r.MinHealthy, 1, 1<<31-1)
	}
	if vip != nil && len(vip.Reals) > 0 && r.MinHealthy > len(vip.Reals) {
		v.fail(n, "min_healthy", r.MinHealthy, "must not exceed the VIP's number of reals (%d), or it is never announced", len(vip.Reals))
	}
	if parent == nil || r.WhenUnhealthy != parent.WhenUnhealthy {
		oneOfValue(v, n, "when_unhealthy", r.WhenUnhealthy, UnhealthyWithdraw, UnhealthyDeprioritize)
	}
}

func (v *validator) vips(root node, c *Config) {
	byKey := map[VIPKey]int{}
	byAddr := map[netip.Addr]int{}
	for i := range c.VIPs {
		vip := &c.VIPs[i]
		n := node{path: indexPath("vip", i), origin: vip.origin, fromFile: vip.origin != ""}
		v.vip(n, vip, c)

		if !vip.Address.IsValid() {
			continue
		}
		if j, dup := byKey[vip.Key()]; dup {
			var after []string
			for _, o := range []string{vip.origin, c.VIPs[j].origin} {
				if o != "" {
					after = append(after, subPath(o, "port"), subPath(o, "protocol"))
				}
			}
			v.failAfter(n, after, "", vip.Key(), "duplicate of vip[%d]", j)
		} else {
			byKey[vip.Key()] = i
		}
		// One route is announced per address, so the services on an
		// address must agree on how.
		if j, seen := byAddr[vip.Address]; !seen {
			byAddr[vip.Address] = i
		} else if field, value := routeDiff(&c.VIPs[j].BGP, &vip.BGP); field != "" {
			v.fail(n.child("bgp"), field, value,
				"must match vip[%d], which has the same address (one route is announced per address)", j)
		}
	}
}

// routeDiff names the first route attribute in which b differs from a.
func routeDiff(a, b *Route) (string, any) {
	switch {
	case a.Announce != b.Announce:
		return "announce", b.Announce
	case !slices.Equal(a.Communities, b.Communities):
		return "communities", stringsOf(b.Communities)
	case !slices.Equal(a.LargeCommunities, b.LargeCommunities):
		return "large_communities", stringsOf(b.LargeCommunities)
	case !equalPtr(a.MED, b.MED):
		return "med", derefOrNil(b.MED)
	case !equalPtr(a.LocalPref, b.LocalPref):
		return "local_pref", derefOrNil(b.LocalPref)
	case a.WhenUnhealthy != b.WhenUnhealthy:
		return "when_unhealthy", b.WhenUnhealthy
	}
	return "", nil
}

func (v *validator) vip(n node, vip *VIP, c *Config) {
	switch {
	case !vip.Address.IsValid():
		v.fail(n, "address", nil, "required")
	case vip.Address.Is4In6():
		v.fail(n, "address", vip.Address, "must be written as plain IPv4, not IPv4-mapped IPv6")
	case unicastProblem(vip.Address) != "":
		v.fail(n, "address", vip.Address, "%s", unicastProblem(vip.Address))
	}
	oneOfValue(v, n, "protocol", vip.Protocol, TCP, UDP)
	if vip.Flags.DportOnly && vip.Flags.NoSrcPort {
		v.fail(n, "flags", stringsOf(vip.Flags.Names()), "%s and %s exclude each other", FlagDportOnly, FlagNoSrcPort)
	}
	if vip.RingSize < minRingSize || vip.RingSize > MaxRingSize || !isPrime(uint64(vip.RingSize)) {
		v.fail(n, "ring_size", vip.RingSize, ringSizeMsg)
	}
	v.health(n.child("health"), &vip.Health, &c.Health)
	v.checkPort(n.child("health"), &vip.Health, vip)
	v.route(n.child("bgp"), &vip.BGP, &c.BGP.Route, vip)

	weighted := 0
	seen := make(map[netip.Addr]int, len(vip.Reals))
	for i := range vip.Reals {
		r := &vip.Reals[i]
		rn := node{path: subPath(n.path, indexPath("real", i)), origin: r.origin, fromFile: r.origin != ""}
		v.real(rn, r, vip)
		if j, dup := seen[r.Address]; dup && r.Address.IsValid() {
			v.fail(rn, "address", r.Address, "duplicate of %s", subPath(n.path, indexPath("real", j)))
		} else if !dup {
			seen[r.Address] = i
		}
		if r.Weight > 0 && r.State != RealDisabled {
			weighted++
		}
	}
	if weighted > int(vip.RingSize) && vip.RingSize >= minRingSize {
		v.fail(n, "ring_size", vip.RingSize, "must be at least the number of weighted reals (%d)", weighted)
	}
}

// checkPort requires a check port for a VIP that serves every port.
func (v *validator) checkPort(n node, h *HealthCheck, vip *VIP) {
	if vip.Port == 0 && h.Port == 0 && h.Type.usesPort() {
		var after []string
		if vip.origin != "" {
			after = []string{subPath(vip.origin, "port")}
		}
		v.failAfter(n, after, "port", nil, "required for a %q check of a VIP that serves every port (port = 0)", h.Type)
	}
}

func (v *validator) real(n node, r *Real, vip *VIP) {
	switch a := r.Address; {
	case !a.IsValid():
		v.fail(n, "address", nil, "required")
	case a.Is4In6():
		v.fail(n, "address", a, "must be written as plain IPv4, not IPv4-mapped IPv6")
	case unicastProblem(a) != "":
		v.fail(n, "address", a, "%s", unicastProblem(a))
	case vip.Address.Is6() && !vip.Address.Is4In6() && a.Is4():
		v.fail(n, "address", a, "an IPv6 VIP (%q) needs IPv6 reals (IPv6 cannot be carried in IPv4)", vip.Address.String())
	case a == vip.Address:
		v.fail(n, "address", a, "must not be the VIP's own address")
	}
	if r.Weight > MaxWeight {
		v.fail(n, "weight", r.Weight, "%s", rangeMsg(0, MaxWeight))
	}
	oneOfValue(v, n, "state", r.State, RealUp, RealDrain, RealDisabled)
	if h := r.Health; h != nil {
		v.health(n.child("health"), h, &vip.Health)
		if h.Port != vip.Health.Port || h.Type != vip.Health.Type {
			v.checkPort(n.child("health"), h, vip)
		}
	}
}

// unicastProblem says why an address cannot be a VIP, real or peer.
func unicastProblem(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return "must not have a zone"
	case a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "must be a unicast address"
	case a.IsLoopback():
		return "must not be a loopback address"
	case a.IsLinkLocalUnicast():
		return "must not be a link-local address"
	}
	return ""
}

func distinctReals(vips []VIP) int {
	seen := map[netip.Addr]bool{}
	for i := range vips {
		for _, r := range vips[i].Reals {
			seen[r.Address] = true
		}
	}
	return len(seen)
}

// validIfName follows the kernel's dev_valid_name.
func validIfName(s string) bool {
	return len(s) >= 1 && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\r\v\f")
}

// validToken reports whether s is an HTTP token (RFC 9110 tchar).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isBareKeyChar(c) && !strings.ContainsRune("!#$%&'*+.^`|~", rune(c)) {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// stringsOf turns a list of Stringers or strings into a TOML-like array
// for error values.
func stringsOf[T any](list []T) []any {
	out := make([]any, len(list))
	for i, x := range list {
		out[i] = fmt.Sprint(x)
	}
	return out
}

func equalPtr(a, b *uint32) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func derefOrNil(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}
