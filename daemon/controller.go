package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"

	"vipcast/config"
	"vipcast/health"
	"vipcast/lb"
)

// balancer is what the controller drives: lb.Balancer.
type balancer interface {
	AddVIP(lb.VIP) error
	DelVIP(lb.VIPKey) error
	SetVIPFlags(lb.VIPKey, lb.VIPFlags) error
	SetReals(lb.VIPKey, []lb.Real) error
	VIPs() []lb.VIPInfo
	Stats() (lb.Stats, error)
	VIPStats(lb.VIPKey) (lb.Counter, error)
	RealStats(lb.VIPKey, netip.Addr) (lb.Counter, error)
	SetGatewayMAC(net.HardwareAddr) error
}

// checkSetter is what the controller needs of the health checker.
type checkSetter interface {
	Set([]health.Target) error
}

// adminState is what the operator (file or API) says about a real; health
// decides within it.
type adminState uint8

const (
	adminUp adminState = iota
	adminDrain
	adminDisabled
)

func (a adminState) String() string {
	return [...]string{"up", "draining", "disabled"}[a]
}

// wantReal and wantVIP are the desired state: the file, plus live changes
// made through the API until the next reload.
type wantReal struct {
	addr      netip.Addr
	weight    uint32
	admin     adminState
	check     health.CheckSpec
	moveFlows bool // move_flows_on_down: a failed real loses its flows
}

type wantVIP struct {
	vip       lb.VIP
	check     health.CheckSpec // for reals added through the API
	moveFlows bool             // likewise
	route     config.Route
	reals     map[netip.Addr]*wantReal
}

type realKey struct {
	vip  lb.VIPKey
	real netip.Addr
}

// controller keeps the data plane equal to the desired state combined with
// health: a real the operator wants up is in the ring only while its checks
// pass; a draining real keeps its flows; a disabled one is out.
type controller struct {
	log          *slog.Logger
	dp           balancer
	checker      checkSetter // nil: no health checking, reals count as up
	marks        *markSync   // nil: no healthcheck forwarding
	changed      func()      // told (without the lock held) after every change
	defCheck     health.CheckSpec
	defMoveFlows bool
	defRoute     config.Route

	mu     sync.Mutex
	vips   map[lb.VIPKey]*wantVIP
	health map[realKey]health.State
}

// effective is the data plane's view of one real.
func (c *controller) effective(k lb.VIPKey, r *wantReal) lb.Real {
	out := lb.Real{Addr: r.addr, Weight: r.weight, State: lb.Up}
	healthy := c.checker == nil || c.health[realKey{k, r.addr}] == health.Up
	switch {
	case r.admin == adminDisabled || (!healthy && r.moveFlows):
		out.State = lb.Down
	case r.admin == adminDrain || !healthy:
		// Out of the ring; established flows stay (move_flows_on_down).
		out.State = lb.Draining
	}
	return out
}

func (c *controller) realsOf(w *wantVIP) []lb.Real {
	out := make([]lb.Real, 0, len(w.reals))
	for _, r := range w.reals {
		out = append(out, c.effective(w.vip.Key, r))
	}
	return out
}

// apply makes the data plane and the checks match want, and returns one
// line per change. It diffs against what the data plane holds (so it also
// takes over state adopted from pinned maps): removals first, so that
// capacity freed is there for additions.
func (c *controller) apply(want map[lb.VIPKey]*wantVIP) ([]string, error) {
	c.mu.Lock()
	changes, err := c.applyLocked(want)
	c.mu.Unlock()
	c.notify()
	return changes, err
}

func (c *controller) applyLocked(want map[lb.VIPKey]*wantVIP) ([]string, error) {
	var changes []string
	have := map[lb.VIPKey]lb.VIPInfo{}
	for _, v := range c.dp.VIPs() {
		have[v.Key] = v
	}
	var errs []error
	fail := func(err error) { errs = append(errs, err) }

	for _, k := range sortedKeys(have) {
		w, keep := want[k]
		if keep && w.vip.RingSize == have[k].RingSize {
			continue
		}
		if err := c.dp.DelVIP(k); err != nil {
			fail(err)
			continue
		}
		if keep {
			changes = append(changes, fmt.Sprintf("vip %s: ring size %d -> %d (its flows are placed again)", k, have[k].RingSize, w.vip.RingSize))
		} else {
			changes = append(changes, fmt.Sprintf("vip %s removed", k))
		}
		delete(have, k)
	}
	// Health of reals that are gone is forgotten; the rest carries over.
	for rk := range c.health {
		if w, ok := want[rk.vip]; !ok || w.reals[rk.real] == nil {
			delete(c.health, rk)
		}
	}
	for _, k := range sortedKeys(want) {
		w := want[k]
		cur, exists := have[k]
		if !exists {
			if err := c.dp.AddVIP(w.vip); err != nil {
				fail(err)
				continue
			}
			changes = append(changes, fmt.Sprintf("vip %s added", k))
		} else if cur.Flags != w.vip.Flags {
			if err := c.dp.SetVIPFlags(k, w.vip.Flags); err != nil {
				fail(err)
				continue
			}
			changes = append(changes, fmt.Sprintf("vip %s: flags %s -> %s", k, cur.Flags, w.vip.Flags))
		}
		next := c.realsOf(w)
		if exists && sameReals(cur.Reals, next) {
			continue
		}
		if err := c.dp.SetReals(k, next); err != nil {
			fail(err)
			continue
		}
		changes = append(changes, describeRealChanges(k, cur.Reals, next)...)
	}
	c.vips = want
	if err := c.syncChecksLocked(); err != nil {
		fail(err)
	}
	return changes, errors.Join(errs...)
}

func sameReals(a, b []lb.Real) bool {
	if len(a) != len(b) {
		return false
	}
	as, bs := slices.Clone(a), slices.Clone(b)
	byAddr := func(x, y lb.Real) int { return x.Addr.Compare(y.Addr) }
	slices.SortFunc(as, byAddr)
	slices.SortFunc(bs, byAddr)
	return slices.Equal(as, bs)
}

func describeRealChanges(k lb.VIPKey, before, after []lb.Real) []string {
	old := map[netip.Addr]lb.Real{}
	for _, r := range before {
		old[r.Addr] = r
	}
	var out []string
	for _, r := range after {
		o, ok := old[r.Addr]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("vip %s: real %s added (weight %d, %s)", k, r.Addr, r.Weight, r.State))
		case o != r:
			out = append(out, fmt.Sprintf("vip %s: real %s weight %d -> %d, %s -> %s", k, r.Addr, o.Weight, r.Weight, o.State, r.State))
		}
		delete(old, r.Addr)
	}
	for _, a := range slices.SortedFunc(maps.Keys(old), netip.Addr.Compare) {
		out = append(out, fmt.Sprintf("vip %s: real %s removed", k, a))
	}
	return out
}

func sortedKeys[V any](m map[lb.VIPKey]V) []lb.VIPKey {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b lb.VIPKey) int {
		if r := a.Addr.Compare(b.Addr); r != 0 {
			return r
		}
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		return int(a.Proto) - int(b.Proto)
	})
	return keys
}

// syncChecksLocked gives every real that is not disabled a check, marks
// for the checks that go through the tunnel, and the mark table to match.
func (c *controller) syncChecksLocked() error {
	if c.checker == nil {
		return nil
	}
	var targets []health.Target
	var marked []netip.Addr
	for _, k := range sortedKeys(c.vips) {
		w := c.vips[k]
		for _, r := range w.reals {
			if r.admin == adminDisabled {
				continue
			}
			if needsMark(r.check) {
				marked = append(marked, r.addr)
			}
		}
	}
	var markOf map[netip.Addr]uint32
	if c.marks != nil {
		var err error
		if markOf, err = c.marks.sync(marked); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(c.vips) {
		w := c.vips[k]
		for _, r := range w.reals {
			if r.admin == adminDisabled {
				continue
			}
			spec := r.check
			if needsMark(spec) && c.marks == nil {
				// No tunnel for checks: check the real itself.
				spec.Direct = true
			}
			vip := netip.AddrPortFrom(k.Addr, k.Port)
			initial := health.Down
			if c.health[realKey{k, r.addr}] == health.Up {
				initial = health.Up
			}
			targets = append(targets, health.Target{
				ID:      health.TargetID(vip, k.Proto.String(), r.addr),
				VIP:     vip,
				Proto:   k.Proto.String(),
				Real:    r.addr,
				Mark:    markOf[r.addr],
				Spec:    spec,
				Initial: initial,
			})
		}
	}
	return c.checker.Set(targets)
}

func needsMark(s health.CheckSpec) bool {
	return !s.Direct && s.Type != health.TypeExec && s.Type != health.TypeNone
}

// onHealth takes a checker event into the data plane.
// onHealth takes checker events into the data plane: every VIP they touch
// gets one ring write, however many of its reals changed (when a switch
// dies, all reals of many VIPs fail in the same instant).
func (c *controller) onHealth(events ...health.Event) {
	c.mu.Lock()
	var touched []lb.VIPKey
	for _, ev := range events {
		k, ok := c.keyOf(ev)
		if !ok {
			continue // a target of a VIP removed meanwhile
		}
		rk := realKey{k, ev.Real}
		if c.health[rk] == ev.State {
			continue
		}
		c.health[rk] = ev.State
		if !slices.Contains(touched, k) {
			touched = append(touched, k)
		}
	}
	for _, k := range touched {
		if err := c.dp.SetReals(k, c.realsOf(c.vips[k])); err != nil {
			c.log.Error("apply health change", "vip", k.String(), "err", err)
		}
	}
	c.mu.Unlock()
	if len(touched) > 0 {
		c.notify()
	}
}

func (c *controller) keyOf(ev health.Event) (lb.VIPKey, bool) {
	proto, err := lb.ParseProto(ev.Proto)
	if err != nil {
		return lb.VIPKey{}, false
	}
	k := lb.VIPKey{Addr: ev.VIP.Addr(), Port: ev.VIP.Port(), Proto: proto}
	w, ok := c.vips[k]
	if !ok || w.reals[ev.Real] == nil {
		return k, false
	}
	return k, true
}

func (c *controller) notify() {
	if c.changed != nil {
		c.changed()
	}
}

// seedHealth marks reals that were up in adopted kernel state as healthy,
// so a restart does not take them out of their rings before their first
// checks: the checker starts them Up and takes them down only on failures.
func (c *controller) seedHealth() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.dp.VIPs() {
		for _, r := range v.Reals {
			if r.State != lb.Down {
				c.health[realKey{v.Key, r.Addr}] = health.Up
			}
		}
	}
}

// healthOf reports a real's health for the API ("" when not checked).
func (c *controller) healthOf(k lb.VIPKey, addr netip.Addr) string {
	if c.checker == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.vips[k]
	if !ok || w.reals[addr] == nil || w.reals[addr].admin == adminDisabled {
		return ""
	}
	return c.health[realKey{k, addr}].String()
}
