package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"vipcast/test/lab"
)

// Scenario 4: every real's server stops, so every VIP loses its last
// healthy real and its route leaves BIRD (and the router's kernel); one
// real comes back and the routes return, answered by that real alone.
func TestAllRealsDownWithdrawsRoute(t *testing.T) {
	l := setup(t)
	prefixes := []string{prefixOf(lab.VIP4), prefixOf(lab.VIP6)}
	// The last failing check decides: fall checks after the kill, each
	// interval apart, the first up to one interval after it.
	check := lab.LabCheck
	budget := time.Duration(check.Fall)*check.Interval + check.Timeout + 300*time.Millisecond

	t0 := time.Now()
	for _, r := range l.Reals {
		r.StopServer()
	}
	gone := waitGone(t, l.Bird, prefixes, 5*time.Second)
	for _, p := range prefixes {
		took := gone[p].Sub(t0)
		t.Logf("all reals down: %s left BIRD %s after the servers stopped (budget %s)", p, took.Round(time.Millisecond), budget)
		if took > budget {
			t.Errorf("%s withdrawn after %s, want within %s", p, took, budget)
		}
	}
	// Pipeline overhead: from the deciding check (the last real of the
	// VIP going down, as vipcastd's health log dates it) through the
	// daemon's and the speaker's "vip withdrawn" to the route leaving
	// BIRD. The target is < 200 ms; assert a generous 1 s.
	const overheadTarget, overheadLimit = 200 * time.Millisecond, time.Second
	out := l.LBs[0].Process().Output()
	for _, a := range []netip.Addr{lab.VIP4, lab.VIP6} {
		p := prefixOf(a)
		pl, err := pipelineTimes(out, t0, a)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		total := gone[p].Sub(pl.decided)
		t.Logf("pipeline %s: deciding check (%s, took %s) -> speaker withdrew +%s (announcer logged +%s) -> gone from BIRD +%s; overhead %s (target %s: %s)",
			p, pl.target, pl.latency, pl.speaker.Sub(pl.decided), pl.announcer.Sub(pl.decided), gone[p].Sub(pl.speaker),
			total, overheadTarget, map[bool]string{true: "met", false: "NOT met"}[total < overheadTarget])
		if total > overheadLimit {
			t.Errorf("%s left BIRD %s after the deciding check, want within %s", p, total, overheadLimit)
		}
	}
	if out, err := l.Router.Exec("ip", "route", "show", lab.VIP4.String()); err != nil || len(out) != 0 {
		t.Errorf("the router's kernel still routes %s: %q %v", lab.VIP4, out, err)
	}
	if rep, err := lab.Get(l.Client, ap(lab.VIP4, lab.HTTPPort), "/", lab.DialOptions{Timeout: 500 * time.Millisecond}); err == nil {
		t.Errorf("with every real down, a request to %s was answered by %s", lab.VIP4, rep.Real)
	}

	back := l.Reals[1]
	if err := back.StartServer(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now() // the server listens from here on
	budget = time.Duration(check.Rise)*check.Interval + check.Timeout + 300*time.Millisecond
	for _, p := range prefixes {
		if _, err := l.Bird.WaitRoute(p, true, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t1)
		t.Logf("%s back: %s in BIRD %s after its server listened (budget %s)", back.Name, p, took.Round(time.Millisecond), budget)
		if took > budget {
			t.Errorf("%s re-announced after %s, want within %s", p, took, budget)
		}
	}
	got, errs := lab.Spread(bounded(t, 20*time.Second), l.Client, ap(lab.VIP4, lab.HTTPPort), 30, 4, 0, lab.DialOptions{})
	if len(errs) > 0 || got[back.Name] != 30 {
		t.Errorf("with only %s up, 30 requests were answered by %s (errors %v)", back.Name, got, errs)
	}
}

// Scenario 3: one real's server stops under steady load. vipcastd takes it
// out of service within interval × fall + 100 ms; no connection started
// after that fails; when the server is back it returns after rise passes
// and gets new connections again.
func TestRealLeavesAndReturns(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	vip := vipOf(lab.VIP4, "tcp")
	victim := l.Reals[1]
	check := lab.LabCheck

	type result struct {
		start time.Time
		real  string
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				rep, err := lab.Get(l.Client, ap(lab.VIP4, lab.HTTPPort), "/", lab.DialOptions{Timeout: time.Second})
				mu.Lock()
				results = append(results, result{start, rep.Real, err})
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	health := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h, _, err := lb1.RealHealth(ctx, vip, victim.V4)
		if err != nil {
			return err.Error()
		}
		return h
	}

	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	victim.StopServer()
	leave := waitFor(t, 5*time.Second, 2*time.Millisecond, victim.Name+" out of service", func() (bool, string) {
		h := health()
		return h == "down", "health " + h
	})
	tLeave := t0.Add(leave)
	// The budget applies to vipcastd's decision, which its log dates;
	// the API poll above sees it a little later.
	target := map[string]string{"target": "203.0.113.1:80/tcp@" + victim.V4.String()}
	decided, ok := lb1.Event(t0, "real down", target)
	if !ok {
		t.Fatalf("vipcastd logged no \"real down\" for %s", target["target"])
	}
	budget := time.Duration(check.Fall)*check.Interval + 100*time.Millisecond
	t.Logf("%s's server stopped: vipcastd took it out of service after %s, seen through the API after %s (budget interval %s × fall %d + 100 ms = %s)",
		victim.Name, decided.Sub(t0).Round(time.Millisecond), leave.Round(time.Millisecond), check.Interval, check.Fall, budget)
	if d := decided.Sub(t0); d > budget {
		t.Errorf("%s left service %s after its server stopped, want within %s", victim.Name, d, budget)
	}

	time.Sleep(time.Second) // steady load with the real out
	if err := victim.StartServer(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	ret := waitFor(t, 5*time.Second, 2*time.Millisecond, victim.Name+" back in service", func() (bool, string) {
		h := health()
		return h == "up", "health " + h
	})
	budget = time.Duration(check.Rise)*check.Interval + check.Timeout + 100*time.Millisecond
	back, ok := lb1.Event(t1, "real up", target)
	if !ok {
		t.Fatalf("vipcastd logged no \"real up\" for %s", target["target"])
	}
	t.Logf("%s's server back: in service after %s, seen through the API after %s (rise %d × interval %s; budget %s)",
		victim.Name, back.Sub(t1).Round(time.Millisecond), ret.Round(time.Millisecond), check.Rise, check.Interval, budget)
	if d := back.Sub(t1); d > budget {
		t.Errorf("%s returned %s after its server came back, want within %s", victim.Name, d, budget)
	}
	tBack := t1.Add(ret)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	var before, failedBefore, during, failedDuring, toVictimDuring, after, toVictimAfter int
	for _, r := range results {
		switch {
		case r.start.Before(tLeave):
			before++
			if r.err != nil {
				failedBefore++
			}
		case r.start.Before(t1):
			during++
			if r.err != nil {
				failedDuring++
				if failedDuring <= 3 {
					t.Errorf("connection started %s after %s left service failed: %v", r.start.Sub(tLeave).Round(time.Millisecond), victim.Name, r.err)
				}
			}
			if r.real == victim.Name {
				toVictimDuring++
			}
		case r.start.After(tBack):
			after++
			if r.real == victim.Name {
				toVictimAfter++
			}
		}
	}
	t.Logf("load: %d connections before the real left (%d failed, between the stop and the leave), %d while it was out (%d failed, %d to it), %d after it returned (%d to it)",
		before, failedBefore, during, failedDuring, toVictimDuring, after, toVictimAfter)
	if failedDuring > 0 {
		t.Errorf("%d connections started after %s left service failed, want 0", failedDuring, victim.Name)
	}
	if during == 0 || after == 0 {
		t.Errorf("too little load to judge: %d connections while out, %d after", during, after)
	}
	if toVictimAfter == 0 {
		t.Errorf("%s got none of %d connections after it returned", victim.Name, after)
	}
}

// waitGone polls BIRD for all prefixes at once until none is left, and
// returns when each was first seen gone (one control connection, so a
// round is well under a millisecond per prefix).
func waitGone(t *testing.T, b *lab.Bird, prefixes []string, timeout time.Duration) map[string]time.Time {
	t.Helper()
	gone := map[string]time.Time{}
	deadline := time.Now().Add(timeout)
	for len(gone) < len(prefixes) {
		for _, p := range prefixes {
			if _, ok := gone[p]; ok {
				continue
			}
			has, err := b.HasRoute(p)
			if err != nil {
				t.Fatalf("BIRD query: %v", err)
			}
			if !has {
				gone[p] = time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD still routes some of %v after %s (gone: %v)", prefixes, timeout, gone)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return gone
}

// pipeline is one VIP's withdrawal as vipcastd logged it.
type pipeline struct {
	target    string        // the real whose check decided
	latency   time.Duration // that check's own duration
	decided   time.Time     // health: the last "real down" of the VIP
	speaker   time.Time     // bgp "vip withdrawn" prefix=…: Speaker.Withdraw done
	announcer time.Time     // bgp "vip withdrawn" vip=… reason=…: logged after that
}

// pipelineTimes reads vipcastd's JSON log (since `since`) for vip's
// withdrawal: the first withdrawal lines of the speaker (field prefix) and
// of the daemon's announcer (field vip, both component=bgp), and the last
// health "real down" of one of the VIP's reals before them.
func pipelineTimes(log string, since time.Time, vip netip.Addr) (pipeline, error) {
	var pl pipeline
	prefix := netip.PrefixFrom(vip, vip.BitLen()).String()
	type down struct {
		at      time.Time
		target  string
		latency time.Duration
	}
	var downs []down
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		ts, _ := ev["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !at.After(since) {
			continue
		}
		str := func(k string) string { s, _ := ev[k].(string); return s }
		switch {
		case str("component") == "health" && str("msg") == "real down" && sameVIP(str("vip"), vip):
			lat, _ := ev["latency"].(float64) // slog's JSON renders a Duration in ns
			downs = append(downs, down{at, str("target"), time.Duration(lat)})
		case str("component") == "bgp" && str("msg") == "vip withdrawn" && pl.announcer.IsZero() && sameVIP(str("vip"), vip):
			pl.announcer = at
		case str("component") == "bgp" && str("msg") == "vip withdrawn" && pl.speaker.IsZero() && str("prefix") == prefix:
			pl.speaker = at
		}
	}
	if pl.speaker.IsZero() {
		return pl, fmt.Errorf("vipcastd logged no bgp \"vip withdrawn\" for %s", prefix)
	}
	if pl.announcer.IsZero() {
		pl.announcer = pl.speaker
	}
	for _, d := range downs {
		if !d.at.After(pl.speaker) {
			pl.decided, pl.target, pl.latency = d.at, d.target, d.latency
		}
	}
	if pl.decided.IsZero() {
		return pl, fmt.Errorf("vipcastd logged no health \"real down\" for %s before withdrawing it (%d after)", vip, len(downs))
	}
	return pl, nil
}

// sameVIP reports whether a logged vip field ("203.0.113.1" or
// "203.0.113.1:80") names vip.
func sameVIP(field string, vip netip.Addr) bool {
	if a, err := netip.ParseAddr(field); err == nil {
		return a == vip
	}
	if ap, err := netip.ParseAddrPort(field); err == nil {
		return ap.Addr() == vip
	}
	return false
}
