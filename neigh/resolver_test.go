package neigh

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"vipcast/internal/testutil"
)

// Generous bounds for CI; the measured figures are logged.
const (
	settle       = 5 * time.Second // first result
	followBound  = 2 * time.Second // a change must be followed within this
	latencyGoal  = 100 * time.Millisecond
	fastProbe    = 200 * time.Millisecond
	fastAttempts = 3
)

func logLatency(t *testing.T, what string, d time.Duration) {
	t.Helper()
	note := ""
	if d > latencyGoal {
		note = " (above the 100 ms goal)"
	}
	t.Logf("latency %s: %s%s", what, d.Round(10*time.Microsecond), note)
}

// 1. The MAC comes from the kernel neighbour table when it has an entry.
func TestFromNeighbourTable(t *testing.T) {
	l := newLab(t, labOpts{defaults: true})
	// MACs no host has, so that only the table can have supplied them.
	tableV4, _ := net.ParseMAC("02:00:5e:00:00:41")
	tableV6, _ := net.ParseMAC("02:00:5e:00:00:61")
	l.lb.MustExec(t, "ip", "neigh", "replace", routerV4.String(), "lladdr", tableV4.String(), "dev", "eth0", "nud", "permanent")
	l.lb.MustExec(t, "ip", "-6", "neigh", "replace", routerV6.String(), "lladdr", tableV6.String(), "dev", "eth0", "nud", "reachable")

	r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path})
	g := r.await(t, settle, "both families from the table", func(g Gateway) bool {
		return g.IPv4.Known() && g.IPv6.Known()
	})
	if g.MAC.String() != tableV4.String() || g.Family != IPv4 || g.IP != routerV4 || g.Source != SourceTable {
		t.Errorf("data-plane gateway %s; want %s from IPv4's %s (the IPv4 rule)", g, tableV4, routerV4)
	}
	if g.IPv4.State != "permanent" || g.IPv4.Source != SourceTable {
		t.Errorf("IPv4 hop %s; want permanent entry from the table", g.IPv4)
	}
	if g.IPv6.MAC.String() != tableV6.String() || g.IPv6.IP != routerV6 || g.IPv6.Source != SourceTable || g.IPv6.State != "reachable" {
		t.Errorf("IPv6 hop %s; want %s via %s from a reachable entry", g.IPv6, tableV6, routerV6)
	}
	if g.IPv6.Metric != 1024 {
		t.Errorf("IPv6 metric %d, want the kernel default 1024", g.IPv6.Metric)
	}
	t.Logf("%s; v4: %s; v6: %s", g, g.IPv4, g.IPv6)
}

// 2. With an empty neighbour table the MAC is found by ARP and NDP, which
// the router's kernel answers.
func TestActiveResolution(t *testing.T) {
	l := newLab(t, labOpts{defaults: true})
	l.lb.MustExec(t, "ip", "neigh", "flush", "dev", "eth0")
	l.lb.MustExec(t, "ip", "-6", "neigh", "flush", "dev", "eth0")

	begin := time.Now()
	r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, ProbeTimeout: fastProbe})
	g := r.await(t, settle, "ARP and NDP answers", func(g Gateway) bool {
		return g.IPv4.Known() && g.IPv6.Known()
	})
	logLatency(t, "start to both families resolved (ARP + NDP)", time.Since(begin))
	if g.IPv4.MAC.String() != l.rtrMAC.String() || g.IPv4.Source != SourceARP {
		t.Errorf("IPv4 hop %s; want router MAC %s by ARP", g.IPv4, l.rtrMAC)
	}
	if g.IPv6.MAC.String() != l.rtrMAC.String() || g.IPv6.Source != SourceNDP {
		t.Errorf("IPv6 hop %s; want router MAC %s by NDP", g.IPv6, l.rtrMAC)
	}
	if g.Source != SourceARP || g.Family != IPv4 {
		t.Errorf("data-plane gateway %s; want IPv4's ARP result", g)
	}
}

// 2b. NDP alone, with only a link-local next hop (what router
// advertisements install), and the stale-entry path: a stale entry is
// used at once and checked with a probe whose answer replaces it. The
// kernel sees that answer too and refreshes its entry, so the MAC may end
// up credited to either.
func TestActiveResolutionIPv6LinkLocal(t *testing.T) {
	l := newLab(t, labOpts{})
	llRouter := linkLocalOf(t, l.rtr)
	l.lb.MustExec(t, "ip", "-6", "route", "add", "default", "via", llRouter.String(), "dev", "eth0")
	stale, _ := net.ParseMAC("02:00:5e:00:00:62")
	l.lb.MustExec(t, "ip", "-6", "neigh", "replace", llRouter.String(), "lladdr", stale.String(), "dev", "eth0", "nud", "stale")

	r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv6, ProbeTimeout: fastProbe})
	g := r.await(t, settle, "the probe's answer replacing the stale entry", macIs(l.rtrMAC))
	if g.Family != IPv6 || g.IP != llRouter || (g.Source != SourceNDP && g.Source != SourceTable) {
		t.Errorf("gateway %s (v6: %s); want the router's MAC via %s", g, g.IPv6, llRouter)
	}
	t.Logf("%s (v6: %s)", g, g.IPv6)
	if g.IPv4.Family != 0 {
		t.Errorf("IPv4 hop %s reported although only IPv6 is watched", g.IPv4)
	}
}

func linkLocalOf(t *testing.T, ns *testutil.NS) netip.Addr {
	t.Helper()
	out := string(ns.MustExec(t, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"))
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatalf("no link-local address in %s: %s", ns.Name, out)
	return netip.Addr{}
}

// 3. The gateway is replaced (default route now via a second router) or
// the default route moves (a lower-metric one appears, then goes): each
// change is followed, and how fast is measured from the netlink call.
func TestGatewayReplaced(t *testing.T) {
	l := newLab(t, labOpts{router2: true, defaults: true})
	h := handle(t, l.lb)
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	defaultRoute := func(via netip.Addr, metric int) *netlink.Route {
		return &netlink.Route{LinkIndex: link.Attrs().Index, Gw: via.AsSlice(), Priority: metric}
	}

	t.Run("IPv4", func(t *testing.T) {
		r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv4, ProbeTimeout: fastProbe})
		r.await(t, settle, "first router", macIs(l.rtrMAC))

		// Replace: the new next hop has no neighbour entry yet, so
		// this includes one ARP exchange.
		begin := time.Now()
		if err := h.RouteReplace(defaultRoute(router2V4, 0)); err != nil {
			t.Fatal(err)
		}
		g := r.await(t, followBound, "second router after route replace", macIs(l.rtr2MAC))
		logLatency(t, "IPv4 default route replaced (new next hop resolved by ARP)", g.Since.Sub(begin))
		if g.IP != router2V4 || g.Source != SourceARP {
			t.Errorf("gateway %s; want %s by ARP", g, router2V4)
		}

		// Move: a lower-metric default route through the first router
		// appears and wins, then goes. Its neighbour entry is in the
		// table, so this is the pure notification path.
		l.lb.MustExec(t, "ip", "route", "add", "default", "via", router2V4.String(), "dev", "eth0", "metric", "100")
		l.lb.MustExec(t, "ip", "route", "del", "default", "via", router2V4.String(), "dev", "eth0", "metric", "0")
		l.lb.MustExec(t, "ip", "neigh", "replace", routerV4.String(), "lladdr", l.rtrMAC.String(), "dev", "eth0", "nud", "reachable")
		begin = time.Now()
		if err := h.RouteAdd(defaultRoute(routerV4, 10)); err != nil {
			t.Fatal(err)
		}
		g = r.await(t, followBound, "first router after a lower-metric route appeared", macIs(l.rtrMAC))
		logLatency(t, "IPv4 lower-metric default route added (neighbour known)", g.Since.Sub(begin))
		if g.IPv4.Metric != 10 || g.Source != SourceTable {
			t.Errorf("IPv4 hop %s; want metric 10 from the table", g.IPv4)
		}
		begin = time.Now()
		if err := h.RouteDel(defaultRoute(routerV4, 10)); err != nil {
			t.Fatal(err)
		}
		g = r.await(t, followBound, "second router after the lower-metric route went", macIs(l.rtr2MAC))
		logLatency(t, "IPv4 lower-metric default route deleted", g.Since.Sub(begin))
	})

	t.Run("IPv6", func(t *testing.T) {
		r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv6, ProbeTimeout: fastProbe})
		r.await(t, settle, "first router", macIs(l.rtrMAC))
		begin := time.Now()
		if err := h.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: router2V6.AsSlice(), Priority: 1024}); err != nil {
			t.Fatal(err)
		}
		g := r.await(t, followBound, "second router after route replace", macIs(l.rtr2MAC))
		logLatency(t, "IPv6 default route replaced (new next hop resolved by NDP)", g.Since.Sub(begin))
		if g.IP != router2V6 || g.Source != SourceNDP {
			t.Errorf("gateway %s; want %s by NDP", g, router2V6)
		}
	})
}

// 4. The router's MAC changes and it announces that (gratuitous ARP,
// unsolicited NA); the kernel updates its entry and the Resolver follows.
// Also the plain case of the entry being replaced in the LB's table.
func TestRouterMACChanges(t *testing.T) {
	l := newLab(t, labOpts{defaults: true})
	newMAC, _ := net.ParseMAC("02:00:5e:00:01:99")

	t.Run("neighbour entry replaced", func(t *testing.T) {
		l.lb.MustExec(t, "ip", "neigh", "replace", routerV4.String(), "lladdr", l.rtrMAC.String(), "dev", "eth0", "nud", "reachable")
		r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv4})
		r.await(t, settle, "router MAC", macIs(l.rtrMAC))
		h := handle(t, l.lb)
		link, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		other, _ := net.ParseMAC("02:00:5e:00:00:42")
		begin := time.Now()
		if err := h.NeighSet(&netlink.Neigh{LinkIndex: link.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_REACHABLE, IP: routerV4.AsSlice(), HardwareAddr: other}); err != nil {
			t.Fatal(err)
		}
		g := r.await(t, followBound, "replaced entry", macIs(other))
		logLatency(t, "IPv4 neighbour entry changed MAC", g.Since.Sub(begin))
		l.lb.MustExec(t, "ip", "neigh", "del", routerV4.String(), "dev", "eth0")
	})

	t.Run("IPv4 gratuitous ARP", func(t *testing.T) {
		l.lb.MustExec(t, "ip", "neigh", "replace", routerV4.String(), "lladdr", l.rtrMAC.String(), "dev", "eth0", "nud", "reachable")
		r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv4, ProbeTimeout: fastProbe})
		r.await(t, settle, "router MAC", macIs(l.rtrMAC))
		l.rtr.MustExec(t, "ip", "link", "set", "dev", "eth0", "address", newMAC.String())
		begin := time.Now()
		sendGratuitousARP(t, l.rtr, "eth0", routerV4)
		g := r.await(t, followBound, "router's new MAC", macIs(newMAC))
		logLatency(t, "router MAC change announced by gratuitous ARP", g.Since.Sub(begin))
		t.Logf("LB kernel entry now: %s", neighState(t, l.lb, routerV4))
	})

	t.Run("IPv6 unsolicited NA", func(t *testing.T) {
		cur := linkMAC(t, l.rtr, "eth0")
		l.lb.MustExec(t, "ip", "-6", "neigh", "replace", routerV6.String(), "lladdr", cur.String(), "dev", "eth0", "nud", "reachable")
		r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv6, ProbeTimeout: fastProbe})
		r.await(t, settle, "router MAC", macIs(cur))
		next, _ := net.ParseMAC("02:00:5e:00:01:66")
		l.rtr.MustExec(t, "ip", "link", "set", "dev", "eth0", "address", next.String())
		begin := time.Now()
		sendUnsolicitedNA(t, l.rtr, "eth0", routerV6)
		g := r.await(t, followBound, "router's new MAC", macIs(next))
		logLatency(t, "router MAC change announced by unsolicited NA", g.Since.Sub(begin))
		t.Logf("LB kernel entry now: %s", neighState(t, l.lb, routerV6))
	})
}

// 5. No default route: the reason says so, per family, and the Resolver
// follows a route that appears later. An unanswered next hop and a missing
// interface are reported clearly too.
func TestUnknownReasons(t *testing.T) {
	l := newLab(t, labOpts{})

	t.Run("no default route", func(t *testing.T) {
		r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, ProbeTimeout: fastProbe})
		g := r.await(t, settle, "a result", func(g Gateway) bool { return !errors.Is(g.Err, ErrNotStarted) })
		want := "no IPv4 default route via eth0; no IPv6 default route via eth0"
		if g.Known() || g.Err == nil || g.Err.Error() != want || !errors.Is(g.Err, ErrNoRoute) {
			t.Fatalf("gateway %s, err %v; want unknown with %q wrapping ErrNoRoute", g, g.Err, want)
		}
		t.Logf("reported: %s", g)
		begin := time.Now()
		l.lb.MustExec(t, "ip", "route", "add", "default", "via", routerV4.String(), "dev", "eth0")
		g = r.await(t, followBound, "the new route's gateway", macIs(l.rtrMAC))
		t.Logf("default route added: followed in %s (includes spawning ip and one ARP exchange)", g.Since.Sub(begin).Round(time.Microsecond))
		if g.IPv6.Known() || !errors.Is(g.IPv6.Err, ErrNoRoute) {
			t.Errorf("IPv6 hop %s; want still no route", g.IPv6)
		}
		l.lb.MustExec(t, "ip", "route", "del", "default", "via", routerV4.String(), "dev", "eth0")
		r.await(t, followBound, "unknown again", func(g Gateway) bool { return errors.Is(g.Err, ErrNoRoute) && !g.Known() })
	})

	t.Run("unanswered", func(t *testing.T) {
		// Nobody holds router2V4 in this lab.
		l.lb.MustExec(t, "ip", "route", "replace", "default", "via", router2V4.String(), "dev", "eth0")
		t.Cleanup(func() { _, _ = l.lb.Exec("ip", "route", "del", "default") })
		r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv4, ProbeTimeout: 100 * time.Millisecond, ProbeAttempts: 2})
		g := r.await(t, settle, "a result", func(g Gateway) bool { return !errors.Is(g.Err, ErrNotStarted) })
		want := "ARP for 192.0.2.3 on eth0 unanswered (2 attempts, 100ms each)"
		if g.Known() || g.Err == nil || g.Err.Error() != want || !errors.Is(g.Err, ErrUnanswered) {
			t.Fatalf("gateway %s; want unknown with %q", g, want)
		}
		t.Logf("reported: %s", g)
	})

	t.Run("no interface", func(t *testing.T) {
		r := start(t, Options{Interface: "eth9", NetNSPath: l.lb.Path})
		g := r.await(t, settle, "a result", func(g Gateway) bool { return !errors.Is(g.Err, ErrNotStarted) })
		if g.Known() || !errors.Is(g.Err, ErrNoInterface) || !strings.Contains(g.Err.Error(), "interface eth9 not found") {
			t.Fatalf("gateway %s; want unknown with ErrNoInterface", g)
		}
		t.Logf("reported: %s", g)
	})
}

// The Resolver works on behalf of the namespace of the goroutine that
// called New, or of a NetNS handle, whatever thread Run is on later.
func TestNamespaceSelection(t *testing.T) {
	l := newLab(t, labOpts{defaults: true})
	t.Run("caller's namespace", func(t *testing.T) {
		var r *Resolver
		if err := l.lb.Do(func() error {
			var err error
			r, err = New(Options{Interface: "eth0", Families: IPv4, ProbeTimeout: fastProbe})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		rr := run(t, r) // Run on a goroutine in the test's namespace
		g := rr.await(t, settle, "router MAC", macIs(l.rtrMAC))
		t.Logf("%s", g)
	})
	t.Run("Run from a goroutine inside another namespace", func(t *testing.T) {
		r, err := New(Options{Interface: "eth0", Families: IPv4, NetNSPath: l.lb.Path, ProbeTimeout: fastProbe})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		// The router's namespace has an eth0 with a different MAC and
		// no default route: answers from there would show.
		go func() { done <- l.rtr.Do(func() error { return r.Run(ctx) }) }()
		select {
		case g := <-r.Updates():
			if g.MAC.String() != l.rtrMAC.String() || g.IP != routerV4 {
				t.Errorf("got %s; want the LB namespace's gateway %s", g, l.rtrMAC)
			}
		case <-time.After(settle):
			t.Fatalf("no result; current %s", r.Current())
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
	})
	t.Run("NetNS handle", func(t *testing.T) {
		h, err := netns.GetFromPath(l.lb.Path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(Options{Interface: "eth0", Families: IPv6, NetNS: h, ProbeTimeout: fastProbe})
		h.Close() // the Resolver holds its own duplicate
		if err != nil {
			t.Fatal(err)
		}
		rr := run(t, r)
		rr.await(t, settle, "router MAC", macIs(l.rtrMAC))
	})
}

// Notifications lost with a dead subscription are made up for: the
// Resolver subscribes again and re-reads the state.
func TestResubscribes(t *testing.T) {
	l := newLab(t, labOpts{router2: true, defaults: true})
	subs := make(chan *subscription, 4)
	r, err := New(Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv4, ProbeTimeout: fastProbe, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.subscribed = func(s *subscription) {
		select {
		case subs <- s:
		default:
		}
	}
	rr := run(t, r)
	rr.await(t, settle, "first router", macIs(l.rtrMAC))
	first := <-subs
	first.stop() // as if the kernel had dropped the socket
	select {
	case <-subs:
	case <-time.After(followBound):
		t.Fatal("no new subscription")
	}
	begin := time.Now()
	l.lb.MustExec(t, "ip", "route", "replace", "default", "via", router2V4.String(), "dev", "eth0")
	g := rr.await(t, followBound, "second router through the new subscription", macIs(l.rtr2MAC))
	t.Logf("followed through the new subscription in %s (includes spawning ip and ARP)", g.Since.Sub(begin).Round(time.Microsecond))
}

// 6. Run returns promptly when ctx ends — also in the middle of a probe —
// and leaves no goroutine behind.
func TestStopsPromptly(t *testing.T) {
	l := newLab(t, labOpts{defaults: true})
	baseline := runtime.NumGoroutine()

	r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, ProbeTimeout: fastProbe})
	r.await(t, settle, "router MAC", macIs(l.rtrMAC))
	took := r.stop(t)
	t.Logf("Run returned %s after cancel (steady state)", took.Round(time.Microsecond))
	if took > time.Second {
		t.Errorf("Run took %s to return", took)
	}
	if _, ok := <-r.Updates(); ok {
		// the last value may still be buffered; the channel must close after it
		if _, ok := <-r.Updates(); ok {
			t.Error("Updates not closed after Run returned")
		}
	}

	// Mid-probe: the next hop never answers and each attempt waits 10 s.
	l.lb.MustExec(t, "ip", "route", "replace", "default", "via", router2V4.String(), "dev", "eth0")
	r2 := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv4, ProbeTimeout: 10 * time.Second})
	time.Sleep(200 * time.Millisecond) // let the probe start
	took = r2.stop(t)
	t.Logf("Run returned %s after cancel (ARP probe in flight)", took.Round(time.Microsecond))
	if took > time.Second {
		t.Errorf("Run took %s to return with a probe in flight", took)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	if err := r2.Close(); err != nil {
		t.Error(err)
	}

	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after stop, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// A next hop that never answers does not hold up its replacement: the
// probe in flight is abandoned when the default route moves, however
// often it moves, and Run still stops promptly afterwards.
func TestNextHopFlapping(t *testing.T) {
	l := newLab(t, labOpts{})
	h := handle(t, l.lb)
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	via := func(gw netip.Addr) {
		t.Helper()
		if err := h.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
	via(router2V4) // nobody has it in this lab
	r := start(t, Options{Interface: "eth0", NetNSPath: l.lb.Path, Families: IPv4, ProbeTimeout: 10 * time.Second})
	time.Sleep(100 * time.Millisecond) // the first probe is waiting for an answer
	for range 10 {
		via(routerV4)
		via(router2V4)
	}
	begin := time.Now()
	via(routerV4)
	// An intermediate move to the router may already have been
	// published, so this measures until a correct answer is seen, not
	// until it was published.
	r.await(t, followBound, "the answering router despite unanswered probes", func(g Gateway) bool {
		return macIs(l.rtrMAC)(g) && g.IP == routerV4
	})
	t.Logf("answering router seen %s after the last move away from the unanswered next hop", time.Since(begin).Round(time.Microsecond))
	if took := r.stop(t); took > time.Second {
		t.Errorf("Run took %s to stop", took)
	}
}
