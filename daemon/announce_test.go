package daemon

import (
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"vipcast/bgp"
	"vipcast/config"
)

// fakeRoutes records what the announcer asks of the speaker.
type fakeRoutes struct {
	mu     sync.Mutex
	routes map[netip.Prefix]bgp.Attrs
}

func (f *fakeRoutes) Announce(p netip.Prefix, a bgp.Attrs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[p] = a
	return nil
}

func (f *fakeRoutes) Withdraw(p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.routes, p)
	return nil
}

func (f *fakeRoutes) has(p netip.Prefix) (bgp.Attrs, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.routes[p]
	return a, ok
}

func TestAnnouncer(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.1")
	prefix := netip.PrefixFrom(vip, 32)
	med := uint32(500)
	route := config.Route{Announce: true, MinHealthy: 2, WhenUnhealthy: config.UnhealthyWithdraw}
	healthy := 3
	gateway, ready := true, false
	routes := &fakeRoutes{routes: map[netip.Prefix]bgp.Attrs{}}
	now := time.Unix(1000, 0)
	a := &announcer{
		log:     slog.New(slog.DiscardHandler),
		speaker: routes,
		grace:   now.Add(30 * time.Second),
		delay:   5 * time.Second,
		depri:   config.Deprioritize{MED: &med, ASPathPrepend: 3},
		services: func() []addressServices {
			return []addressServices{{addr: vip, route: route, services: []bgp.ServiceHealth{
				{Key: "203.0.113.1:80/tcp", Healthy: healthy, Total: 3, MinHealthy: route.MinHealthy},
			}}}
		},
		ready:   func() bool { return ready },
		gateway: func() bool { return gateway },
		kick:    make(chan struct{}, 1),
		holds:   map[netip.Addr]*bgp.HoldDown{},
		state:   map[netip.Addr]announceState{},
	}
	step := func(name string, at time.Duration, want bool) {
		t.Helper()
		a.evaluate(now.Add(at))
		if _, got := routes.has(prefix); got != want {
			t.Fatalf("%s: announced %v, want %v", name, got, want)
		}
	}
	step("checks not done, within startup grace", 0, false)
	ready = true
	step("first round of checks done", time.Second, true)
	healthy = 1
	step("fewer than min_healthy reals", 2*time.Second, false)
	healthy = 3
	step("healthy again, inside the hold-down", 3*time.Second, false)
	step("healthy for the whole hold-down", 8*time.Second, true)
	gateway = false
	step("gateway MAC unknown", 9*time.Second, false)
	gateway = true
	step("gateway back: held down after the withdrawal", 15*time.Second, false)
	step("gateway back for the whole hold-down", 21*time.Second, true)

	route.WhenUnhealthy = config.UnhealthyDeprioritize
	healthy = 0
	step("unhealthy with when_unhealthy = deprioritize", 22*time.Second, true)
	if attrs, _ := routes.has(prefix); attrs.MED == nil || *attrs.MED != 500 || attrs.Prepend != 3 {
		t.Fatalf("deprioritized attrs %+v, want MED 500 and 3 prepends", attrs)
	}
	if !a.isAnnounced(vip) {
		t.Fatal("a deprioritized VIP counts as announced")
	}

	withdrawn := a.drain()
	if len(withdrawn) != 1 || withdrawn[0] != vip.String() {
		t.Fatalf("drain withdrew %v", withdrawn)
	}
	healthy = 3
	step("after drain nothing is announced", 60*time.Second, false)

	// A VIP whose announce is off is never announced.
	route = config.Route{Announce: false, MinHealthy: 1}
	a.draining = false
	step("announce = false", 90*time.Second, false)
}

func TestAnnouncerStartupGraceExpires(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.7")
	routes := &fakeRoutes{routes: map[netip.Prefix]bgp.Attrs{}}
	now := time.Unix(1000, 0)
	a := &announcer{
		log: slog.New(slog.DiscardHandler), speaker: routes, grace: now.Add(30 * time.Second),
		services: func() []addressServices {
			return []addressServices{{addr: vip, route: config.Route{Announce: true, MinHealthy: 1},
				services: []bgp.ServiceHealth{{Key: "x", Healthy: 1, Total: 2, MinHealthy: 1}}}}
		},
		ready: func() bool { return false }, gateway: func() bool { return true },
		kick: make(chan struct{}, 1), holds: map[netip.Addr]*bgp.HoldDown{}, state: map[netip.Addr]announceState{},
	}
	a.evaluate(now.Add(29 * time.Second))
	if _, ok := routes.has(netip.PrefixFrom(vip, 32)); ok {
		t.Fatal("announced before the startup grace ended with checks still running")
	}
	a.evaluate(now.Add(31 * time.Second))
	if _, ok := routes.has(netip.PrefixFrom(vip, 32)); !ok {
		t.Fatal("a healthy VIP was not announced once the startup grace ended")
	}
}
