package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"vipcast/bgp"
	"vipcast/config"
	"vipcast/health"
	"vipcast/lb"
)

// announcer decides, per VIP address, whether the address is announced,
// and tells the BGP speaker. An address is announced only when
//   - the gateway MAC is known (otherwise the data plane cannot forward),
//   - the first round of checks is done, or startup_grace has passed,
//   - the announce policy holds for the services on it (enough healthy
//     reals), through the re-announce hold-down.
//
// Otherwise it is withdrawn, or re-announced with worse attributes when
// its VIPs say when_unhealthy = "deprioritize".
type announcer struct {
	log      *slog.Logger
	speaker  routeSink
	policy   bgp.Policy
	depri    config.Deprioritize
	grace    time.Time // announce healthy VIPs from then on, checks done or not
	delay    time.Duration
	services func() []addressServices
	ready    func() bool // first round of checks done
	gateway  func() bool

	kick chan struct{}

	mu       sync.Mutex
	holds    map[netip.Addr]*bgp.HoldDown
	state    map[netip.Addr]announceState
	draining bool // `vipcast drain`: everything withdrawn for good
}

// routeSink is what the announcer needs of the BGP speaker (bgp.Speaker).
type routeSink interface {
	Announce(netip.Prefix, bgp.Attrs) error
	Withdraw(netip.Prefix) error
}

type announceState uint8

const (
	withdrawn announceState = iota
	announced
	deprioritized
)

// addressServices is the health of every service on one address.
type addressServices struct {
	addr     netip.Addr
	services []bgp.ServiceHealth
	route    config.Route // the first service's announce settings
}

func (a *announcer) trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// run re-evaluates on every trigger and at least once a second (startup
// grace and hold-downs expire on their own).
func (a *announcer) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		a.evaluate(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-tick.C:
		}
	}
}

func (a *announcer) evaluate(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	startup := !a.ready() && now.Before(a.grace)
	gwOK := a.gateway()
	seen := map[netip.Addr]bool{}
	for _, as := range a.services() {
		seen[as.addr] = true
		if !as.route.Announce || a.draining {
			why := "announce = false"
			if a.draining {
				why = "draining"
			}
			a.setLocked(as.addr, withdrawn, as.route, why)
			continue
		}
		hold := a.holds[as.addr]
		if hold == nil {
			hold = &bgp.HoldDown{Delay: a.delay}
			a.holds[as.addr] = hold
		}
		healthy := bgp.Decide(as.services, a.policy)
		up, _ := hold.Update(now, healthy && gwOK && !startup)
		switch {
		case up:
			a.setLocked(as.addr, announced, as.route, "healthy")
		case startup:
			// Nothing is known yet: neither announce nor advertise worse.
		case !gwOK:
			a.setLocked(as.addr, withdrawn, as.route, "gateway MAC unknown")
		case as.route.WhenUnhealthy == config.UnhealthyDeprioritize:
			a.setLocked(as.addr, deprioritized, as.route, reason(as.services, healthy))
		default:
			a.setLocked(as.addr, withdrawn, as.route, reason(as.services, healthy))
		}
	}
	for addr := range a.state {
		if !seen[addr] {
			a.setLocked(addr, withdrawn, config.Route{}, "no service left on the address")
			delete(a.holds, addr)
			delete(a.state, addr)
		}
	}
}

func reason(services []bgp.ServiceHealth, healthy bool) string {
	if healthy {
		return "healthy again, held down"
	}
	for _, s := range services {
		if s.Healthy < max(s.MinHealthy, 1) {
			return fmt.Sprintf("%s has %d of %d reals up, needs %d", s.Key, s.Healthy, s.Total, max(s.MinHealthy, 1))
		}
	}
	return "unhealthy"
}

func (a *announcer) setLocked(addr netip.Addr, want announceState, route config.Route, why string) {
	cur, known := a.state[addr]
	if known && cur == want {
		return
	}
	if !known && want == withdrawn {
		a.state[addr] = withdrawn
		return
	}
	prefix := netip.PrefixFrom(addr, addr.BitLen())
	var err error
	switch want {
	case announced:
		err = a.speaker.Announce(prefix, routeAttrs(route))
	case deprioritized:
		attrs := routeAttrs(route)
		attrs.MED = a.depri.MED
		attrs.Communities = append(attrs.Communities, communities(a.depri.Communities)...)
		attrs.Prepend = uint8(min(a.depri.ASPathPrepend, 255))
		err = a.speaker.Announce(prefix, attrs)
	default:
		err = a.speaker.Withdraw(prefix)
	}
	if err != nil {
		a.log.Error("bgp update failed", "vip", addr, "want", want.String(), "err", err)
		return
	}
	a.state[addr] = want
	a.log.Info("vip "+want.String(), "vip", addr, "reason", why)
}

func (s announceState) String() string {
	return [...]string{"withdrawn", "announced", "deprioritized"}[s]
}

func routeAttrs(r config.Route) bgp.Attrs {
	a := bgp.Attrs{Communities: communities(r.Communities), MED: r.MED, LocalPref: r.LocalPref}
	for _, l := range r.LargeCommunities {
		a.LargeCommunities = append(a.LargeCommunities, fmt.Sprintf("%d:%d:%d", l.Global, l.Local1, l.Local2))
	}
	return a
}

func communities(cs []config.Community) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

// isAnnounced reports an address's state for the API.
func (a *announcer) isAnnounced(addr netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state[addr] != withdrawn
}

// addressHealth groups the desired VIPs by address with their health, for
// the announcer.
func (c *controller) addressHealth() []addressServices {
	c.mu.Lock()
	defer c.mu.Unlock()
	byAddr := map[netip.Addr]*addressServices{}
	var order []netip.Addr
	for _, k := range sortedKeys(c.vips) {
		w := c.vips[k]
		as := byAddr[k.Addr]
		if as == nil {
			as = &addressServices{addr: k.Addr, route: w.route}
			byAddr[k.Addr] = as
			order = append(order, k.Addr)
		}
		sh := bgp.ServiceHealth{Key: k.String(), Total: len(w.reals), MinHealthy: w.route.MinHealthy}
		for _, r := range w.reals {
			if c.effective(k, r).State == lb.Up {
				sh.Healthy++
			}
		}
		as.services = append(as.services, sh)
	}
	out := make([]addressServices, 0, len(order))
	for _, a := range order {
		out = append(out, *byAddr[a])
	}
	return out
}

// firstRoundDone reports whether every checked real has had enough checks
// to be judged: up already, or Rise checks run.
func (c *controller) firstRoundDone(status func() []checkProgress) bool {
	if c.checker == nil {
		return true
	}
	c.mu.Lock()
	rise := map[string]int{}
	for _, k := range sortedKeys(c.vips) {
		for _, r := range c.vips[k].reals {
			rise[health.TargetID(netip.AddrPortFrom(k.Addr, k.Port), k.Proto.String(), r.addr)] = max(r.check.Rise, 1)
		}
	}
	c.mu.Unlock()
	for _, st := range status() {
		if need, ok := rise[st.id]; ok && !st.up && st.checks < uint64(need) {
			return false
		}
	}
	return true
}

type checkProgress struct {
	id     string
	up     bool
	checks uint64
}

// announcedAddrs lists the addresses currently announced (deprioritized
// included), for the metrics.
func (a *announcer) announcedAddrs() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []netip.Addr
	for addr, st := range a.state {
		if st != withdrawn {
			out = append(out, addr)
		}
	}
	return out
}

// drain withdraws every address for good and returns the ones that were
// announced.
func (a *announcer) drain() []string {
	a.mu.Lock()
	var was []string
	for addr, st := range a.state {
		if st != withdrawn {
			was = append(was, addr.String())
		}
	}
	a.draining = true
	a.mu.Unlock()
	a.evaluate(time.Now())
	slices.Sort(was)
	return was
}
