package health

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flipServer is a TCP listener on a fixed loopback port that a test stops
// and starts again.
type flipServer struct {
	t    *testing.T
	addr netip.AddrPort
	ln   net.Listener
}

func newFlipServer(t *testing.T) *flipServer {
	s := &flipServer{t: t, addr: closedPort(t, "tcp", "127.0.0.1")}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *flipServer) start() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr.String())
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.ln = ln
	acceptAndClose(ln)
}

func (s *flipServer) stop() {
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// nextEvent waits for an event, failing the test after within.
func nextEvent(t *testing.T, events <-chan Event, within time.Duration) (Event, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("Events closed")
		}
		return ev, time.Since(start)
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	panic("unreachable")
}

// runChecker runs c until the test ends (or stop is called) and returns
// the function that stops it and waits for Run to return.
func runChecker(t *testing.T, c *Checker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestCheckerRiseFall(t *testing.T) {
	srv := newFlipServer(t)
	var logs syncBuffer
	var observed, observedOK atomic.Int64
	c := New(Options{
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Observe: func(id string, ok bool, latency time.Duration) {
			observed.Add(1)
			if ok {
				observedOK.Add(1)
			}
			if id != "svc@127.0.0.1" || latency <= 0 {
				t.Errorf("Observe(%q, %v, %s)", id, ok, latency)
			}
		},
	})
	const (
		interval = 100 * time.Millisecond
		rise     = 2
		fall     = 3
		slack    = 3 // generous for a loaded 2-core machine
	)
	spec := CheckSpec{Type: TypeTCP, Interval: interval, Timeout: 200 * time.Millisecond, Rise: rise, Fall: fall}
	tg := loopTarget(srv.addr, spec)
	tg.ID = "svc@127.0.0.1"
	if err := c.Set([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); len(st) != 1 || st[0].State != Down || st[0].Checks != 0 {
		t.Fatalf("before Run: %+v, want one target, down, no checks", st)
	}
	stopRun := runChecker(t, c)
	// Jitter stretches an interval by up to 10%.
	maxInterval := interval + interval/10
	minInterval := interval - interval/10

	// Down → Up: the first check within one interval, then rise-1 more.
	upBound := slack * (interval + (rise-1)*maxInterval)
	ev, took := nextEvent(t, c.Events(), upBound)
	if ev.State != Up || ev.Previous != Down || ev.TargetID != tg.ID || ev.Real != tg.Real || ev.VIP != tg.VIP || ev.Proto != "tcp" {
		t.Fatalf("first event %+v, want %s down → up", ev, tg.ID)
	}
	if !strings.Contains(ev.Reason, "2 consecutive checks passed") || ev.Latency <= 0 || time.Since(ev.At) > upBound {
		t.Fatalf("up event reason %q latency %s at %s", ev.Reason, ev.Latency, ev.At)
	}
	t.Logf("down → up %s after Run (bound %s)", took, upBound)
	st := c.Status()[0]
	if st.State != Up || !st.LastOK || st.LastError != "" || st.Successes < rise || st.Checks < rise || st.LastLatency <= 0 || st.Since != ev.At {
		t.Fatalf("status after up: %+v", st)
	}

	// Up → Down: fall consecutive failures after the server stops.
	srv.stop()
	downBound := slack * time.Duration(fall) * maxInterval
	ev, took = nextEvent(t, c.Events(), downBound)
	if ev.State != Down || ev.Previous != Up {
		t.Fatalf("second event %+v, want up → down", ev)
	}
	if !strings.Contains(ev.Reason, "3 consecutive checks failed") || !strings.Contains(ev.Reason, "refused") {
		t.Fatalf("down reason %q", ev.Reason)
	}
	if floor := time.Duration(fall-1) * minInterval; took < floor {
		t.Fatalf("down after %s; %d failures cannot happen in less than %s", took, fall, floor)
	}
	t.Logf("up → down %s after the server stopped (floor %s, bound %s)", took, time.Duration(fall-1)*minInterval, downBound)
	st = c.Status()[0]
	if st.State != Down || st.LastOK || !strings.Contains(st.LastError, "refused") || st.Failures < fall || st.Successes != 0 {
		t.Fatalf("status after down: %+v", st)
	}

	// Down → Up again once it serves.
	srv.start()
	restartBound := slack * time.Duration(rise) * maxInterval
	ev, took = nextEvent(t, c.Events(), restartBound)
	if ev.State != Up || ev.Previous != Down {
		t.Fatalf("third event %+v, want down → up", ev)
	}
	if floor := time.Duration(rise-1) * minInterval; took < floor {
		t.Fatalf("up after %s; %d passes cannot happen in less than %s", took, rise, floor)
	}
	t.Logf("down → up %s after the server restarted (bound %s)", took, restartBound)

	// A steady target raises no more events.
	select {
	case ev := <-c.Events():
		t.Fatalf("event while nothing changed: %+v", ev)
	case <-time.After(3 * interval):
	}
	stopRun()
	if _, ok := <-c.Events(); ok {
		t.Fatal("Events still open after Run returned")
	}

	// Every check was observed, and the status counted the same checks.
	st = c.Status()[0]
	if n := observed.Load(); n != int64(st.Checks) || n < rise+fall+rise {
		t.Fatalf("observed %d checks, status counted %d", n, st.Checks)
	}
	if ok := observedOK.Load(); ok < 2*rise || ok > int64(st.Checks)-fall {
		t.Fatalf("observed %d passing checks of %d", ok, st.Checks)
	}

	// One log line per state change, with the component and the real.
	var changes []string
	for _, l := range logs.lines(t) {
		if l["component"] != "health" || l["real"] != "127.0.0.1" || l["target"] != tg.ID {
			t.Fatalf("log line %v", l)
		}
		changes = append(changes, fmt.Sprint(l["previous"], "→", l["state"]))
	}
	if got := strings.Join(changes, " "); got != "down→up up→down down→up" {
		t.Fatalf("logged changes %q", got)
	}
}

func TestCheckerStopsEverything(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	acceptAndClose(ln)
	addr := addrPort(ln.Addr())
	hang := hangServer(t, "127.0.0.1:0")
	// Let goroutines of earlier tests finish before counting.
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()

	c := New(Options{})
	var targets []Target
	const n = 20
	for i := range n {
		tg := loopTarget(addr, CheckSpec{Interval: 50 * time.Millisecond, Rise: 1})
		tg.ID = fmt.Sprintf("t%02d", i)
		targets = append(targets, tg)
	}
	// A hanging exec and a hanging HTTP check must be stopped mid-check too.
	extra := []Target{
		{ID: "exec", VIP: addr, Proto: "tcp", Real: addr.Addr(), Spec: CheckSpec{Type: TypeExec, Interval: 50 * time.Millisecond, Timeout: time.Minute, Command: []string{"/bin/sh", "-c", "sleep 60"}}},
		loopTarget(hang, CheckSpec{Type: TypeHTTP, Interval: 50 * time.Millisecond, Timeout: time.Minute}),
	}
	extra[1].ID = "http"
	if err := c.Set(append(targets, extra...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for range n {
		if ev, _ := nextEvent(t, c.Events(), 5*time.Second); ev.State != Up {
			t.Fatalf("event %+v, want up", ev)
		}
	}
	if during := runtime.NumGoroutine(); during < before+n {
		t.Fatalf("%d goroutines while running %d targets, %d before: the count cannot see them", during, n+2, before)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending (a check ignores cancellation?)")
	}
	for range c.Events() { // drains, and ends only when Events is closed
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Run returned, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Set(targets); !errors.Is(err, ErrStopped) {
		t.Fatalf("Set after Run: %v, want ErrStopped", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("second Run: %v, want ErrStopped", err)
	}
}

func TestCheckerSet(t *testing.T) {
	vip := netip.MustParseAddrPort("203.0.113.1:80")
	none := func(id, real string) Target {
		return Target{ID: id, VIP: vip, Proto: "tcp", Real: netip.MustParseAddr(real), Mark: 10000, Spec: CheckSpec{Type: TypeNone}}
	}
	ids := func(c *Checker) string {
		var out []string
		for _, s := range c.Status() {
			out = append(out, s.TargetID+"="+s.State.String())
		}
		return strings.Join(out, " ")
	}
	c := New(Options{})
	a, b := none("a", "192.0.2.11"), none("b", "192.0.2.12")
	if err := c.Set([]Target{b, a}); err != nil {
		t.Fatal(err)
	}
	if got := ids(c); got != "a=down b=down" {
		t.Fatalf("before Run: %s", got)
	}
	runChecker(t, c)
	got := map[string]Event{}
	for range 2 {
		ev, _ := nextEvent(t, c.Events(), time.Second)
		got[ev.TargetID] = ev
	}
	if got["a"].State != Up || got["b"].State != Up || got["a"].Reason != "no health check configured" {
		t.Fatalf("targets without checks: %+v", got)
	}

	// Validation comes first: a bad set changes nothing.
	for _, bad := range [][]Target{
		{a, a},
		{a, {ID: "c", VIP: vip, Proto: "tcp", Real: netip.MustParseAddr("192.0.2.13"), Spec: CheckSpec{Type: "bogus"}}},
		{a, {ID: "c", VIP: vip, Proto: "tcp", Real: netip.MustParseAddr("192.0.2.13")}}, // no mark
	} {
		if err := c.Set(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Set(%v): %v, want ErrInvalid", bad, err)
		}
	}
	if got := ids(c); got != "a=up b=up" {
		t.Fatalf("after failed Sets: %s", got)
	}

	// Remove b, add c, keep a untouched.
	c2 := none("c", "192.0.2.13")
	if err := c.Set([]Target{a, c2}); err != nil {
		t.Fatal(err)
	}
	if ev, _ := nextEvent(t, c.Events(), time.Second); ev.TargetID != "c" || ev.State != Up {
		t.Fatalf("event %+v, want c up", ev)
	}
	if got := ids(c); got != "a=up c=up" {
		t.Fatalf("after remove and add: %s", got)
	}

	// A changed check keeps the state: a stays up until fall checks of the
	// new kind failed.
	a2 := a
	a2.Spec = CheckSpec{Type: TypeExec, Command: []string{"/bin/sh", "-c", "exit 3"}, Interval: 50 * time.Millisecond, Fall: 2}
	if err := c.Set([]Target{a2, c2}); err != nil {
		t.Fatal(err)
	}
	if st := c.Status()[0]; st.TargetID != "a" || st.State != Up || st.Type != TypeExec {
		t.Fatalf("a right after its check changed: %+v, want still up", st)
	}
	ev, took := nextEvent(t, c.Events(), 3*time.Second)
	if ev.TargetID != "a" || ev.State != Down || ev.Previous != Up || !strings.Contains(ev.Reason, "2 consecutive checks failed, last: exec /bin/sh: exit status 3") {
		t.Fatalf("event %+v, want a up → down after 2 failures", ev)
	}
	t.Logf("changed check: down after %s", took)

	// Same ID, another real: a new target, which starts down.
	c3 := c2
	c3.Real = netip.MustParseAddr("192.0.2.99")
	if err := c.Set([]Target{a2, c3}); err != nil {
		t.Fatal(err)
	}
	ev, _ = nextEvent(t, c.Events(), time.Second)
	if ev.TargetID != "c" || ev.State != Down || ev.Previous != Up || !strings.Contains(ev.Reason, "redefined") {
		t.Fatalf("event %+v, want c up → down (redefined)", ev)
	}
	// ...and, having no check, comes up again at once.
	ev, _ = nextEvent(t, c.Events(), time.Second)
	if ev.TargetID != "c" || ev.State != Up || ev.Real != c3.Real {
		t.Fatalf("event %+v, want c up on its new real", ev)
	}

	// An identical Set changes nothing and raises nothing.
	checks := c.Status()[0].Checks
	if err := c.Set([]Target{a2, c3}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-c.Events():
		t.Fatalf("identical Set raised %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
	if now := c.Status()[0].Checks; now <= checks {
		t.Fatalf("a stopped checking after an identical Set (%d → %d checks)", checks, now)
	}

	// Set(nil) stops everything.
	if err := c.Set(nil); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); len(st) != 0 {
		t.Fatalf("after Set(nil): %+v", st)
	}
}

func TestScheduleJitter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const interval = time.Second
	t.Run("first checks spread over one interval", func(t *testing.T) {
		var buckets [10]int
		for range 1000 {
			d := firstDelay(rng, interval)
			if d < 0 || d >= interval {
				t.Fatalf("first delay %s outside [0, %s)", d, interval)
			}
			buckets[d*10/interval]++
		}
		for i, n := range buckets {
			// 100 expected per tenth; a burst would leave tenths empty.
			if n < 60 || n > 140 {
				t.Fatalf("tenth %d of the interval got %d of 1000 first checks: %v", i, n, buckets)
			}
		}
	})
	tests := []struct {
		jitter   float64
		min, max time.Duration
	}{
		{0.1, 900 * time.Millisecond, 1100 * time.Millisecond},
		{0.5, 500 * time.Millisecond, 1500 * time.Millisecond},
		{0, interval, interval},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("jitter %.1f", tc.jitter), func(t *testing.T) {
			lo, hi := time.Duration(1<<62), time.Duration(0)
			for range 2000 {
				d := nextDelay(rng, interval, tc.jitter)
				lo, hi = min(lo, d), max(hi, d)
			}
			if lo < tc.min || hi > tc.max {
				t.Fatalf("delays in [%s, %s], want within [%s, %s]", lo, hi, tc.min, tc.max)
			}
			// Both ends are used, or the jitter does not spread anything.
			if span := tc.max - tc.min; span > 0 && (lo > tc.min+span/10 || hi < tc.max-span/10) {
				t.Fatalf("delays in [%s, %s] do not cover [%s, %s]", lo, hi, tc.min, tc.max)
			}
		})
	}
	for _, tc := range []struct {
		opt  float64
		want float64
	}{{0, DefaultJitter}, {-1, 0}, {0.3, 0.3}, {2, maxJitter}} {
		if got := New(Options{Jitter: tc.opt}).jitter; got != tc.want {
			t.Errorf("Options.Jitter %v → jitter %v, want %v", tc.opt, got, tc.want)
		}
	}
}

// TestCheckerSpreadsFirstChecks runs many targets and looks at when their
// first checks really happened.
func TestCheckerSpreadsFirstChecks(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	acceptAndClose(ln)
	const (
		n        = 40
		interval = 500 * time.Millisecond
	)
	var mu sync.Mutex
	first := map[string]time.Time{}
	c := New(Options{seed: 42, Observe: func(id string, ok bool, latency time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if _, seen := first[id]; !seen {
			first[id] = time.Now().Add(-latency)
		}
	}})
	var targets []Target
	for i := range n {
		tg := loopTarget(addrPort(ln.Addr()), CheckSpec{Interval: interval})
		tg.ID = fmt.Sprintf("t%02d", i)
		targets = append(targets, tg)
	}
	if err := c.Set(targets); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := runChecker(t, c)
	time.Sleep(interval + 300*time.Millisecond)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(first) != n {
		t.Fatalf("%d of %d targets checked within %s", len(first), n, interval+300*time.Millisecond)
	}
	var offsets []time.Duration
	var buckets [10]int
	for _, at := range first {
		off := at.Sub(start)
		offsets = append(offsets, off)
		buckets[min(9, max(0, int(off*10/interval)))]++
	}
	slices.Sort(offsets)
	used := 0
	for _, b := range buckets {
		if b > 0 {
			used++
		}
	}
	// 40 uniform offsets leave a tenth of the interval empty rarely, and
	// with this seed they use at least 8; a burst would use one or two.
	if used < 7 || offsets[n-1]-offsets[0] < interval/2 {
		t.Fatalf("first checks at %v (tenths used: %v): not spread over the %s interval", offsets, buckets, interval)
	}
	t.Logf("first checks from %s to %s after Run, tenths of the interval used: %v", offsets[0], offsets[n-1], buckets)
}

// A target that starts Up (an adopted real after a restart) stays up while
// it passes and goes down, with an event, once it fails Fall times.
func TestCheckerInitialUp(t *testing.T) {
	srv := newFlipServer(t)
	c := New(Options{})
	spec := CheckSpec{Type: TypeTCP, Interval: 50 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2, Fall: 2}
	tg := loopTarget(srv.addr, spec)
	tg.Initial = Up
	if err := c.Set([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st[0].State != Up {
		t.Fatalf("initial state %s, want up", st[0].State)
	}
	runChecker(t, c)
	select {
	case ev := <-c.Events():
		t.Fatalf("event while a passing target stayed up: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	// Restating the target with another Initial does not reset it.
	tg.Initial = Down
	if err := c.Set([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st[0].State != Up {
		t.Fatalf("Set with Initial=Down reset a running target to %s", st[0].State)
	}
	srv.stop()
	if ev, _ := nextEvent(t, c.Events(), 2*time.Second); ev.State != Down || ev.Previous != Up {
		t.Fatalf("event %+v, want up → down", ev)
	}
}
