//go:build soak

package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"vipcast/api"
	"vipcast/internal/testutil"
	"vipcast/test/lab"
)

// The soak's bounds, and why.
const (
	// defaultDuration is the soak; SOAK_DURATION overrides it.
	defaultDuration = 10 * time.Minute
	// overhead is what the soak needs besides the churn: building, the
	// lab, warm-up, settling, teardown. The test deadline must leave it.
	overhead = 4 * time.Minute
	// grace: how long after an event its cost may still show (health
	// checks noticing a dead real take up to fall × interval, 1.5 s; a
	// busy host adds to that). See Classify.
	grace = 3 * time.Second
	// Flaps: one every flapEvery, hosts in turn, alternating a 1 s stop
	// with a 3 s pause (long enough for checks to time out fall times).
	flapEvery, flapDown, flapPause = 8 * time.Second, time.Second, 3 * time.Second
	// After the soak, with the configuration back to where it started and
	// no traffic, vipcastd may hold at most this many more goroutines and
	// open files than before: health checks in flight (a goroutine and a
	// socket each, 18 checked reals every 500 ms) and the scrape itself
	// come and go. A leak per operation or per connection would show as
	// hundreds or thousands over a soak.
	maxGoroutineGrowth = 10
	maxFDGrowth        = 10
	// RSS and heap may grow with the Go runtime's own sizing (the heap
	// goal follows the peak; the scavenger returns memory lazily), not
	// per operation: bounded by a fixed allowance.
	maxRSSGrowth  = 64 << 20
	maxHeapGrowth = 32 << 20
	// Of the TCP attempts, at most this share may fail even for an
	// explained reason: the churn is arranged to cost a few per cent at
	// most (one stop every 16 s, 7% of removals without draining).
	maxExpectedShare = 0.05
	// UDP: at least this share of datagrams must be echoed. A stop costs
	// a UDP flow placed on that host its whole downtime and restart (its
	// flow stays with the real, as established flows do): about 1.7 s at
	// 50 datagrams/s, one stop every 16 s; about 5% in all.
	minUDPEchoShare = 0.90
	// Of the operator's planned changes (one per 100 ms), at least this
	// share must have been made: a stalled API would show here. Loose on
	// purpose: other test suites share the 2 cores.
	minChurnShare = 0.5
)

// soakCheck is the soak's health check: the lab's (HTTP GET /health; the
// UDP VIPs keep their echo check and inherit the timing), with timing that
// a shared 2-core host cannot trip. The lab's 150 ms timeout did: in a
// 10-minute run the host stalled long enough for two checks in a row to
// time out on every real at once, so a VIP lost all its reals and its
// route, and clients saw "network is unreachable". A stopped server is
// still found at once (connection refused), a paused one within
// fall × interval.
var soakCheck = lab.Check{Type: "http", Path: "/health", Interval: 500 * time.Millisecond,
	Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3}

func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 10*time.Second {
		t.Fatalf("SOAK_DURATION=%q: want a duration of at least 10s (e.g. 10m, 1m)", s)
	}
	return d
}

func TestSoak(t *testing.T) {
	testutil.RequirePrivileged(t)
	dur := soakDuration(t)
	if dl, ok := t.Deadline(); ok && time.Until(dl) < dur+overhead {
		t.Fatalf("test timeout too short for SOAK_DURATION=%s: need at least %s more (make soak passes -timeout $(SOAK_TIMEOUT))", dur, dur+overhead-time.Until(dl))
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SOAK_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", s, err)
		}
	}
	t.Logf("soak for %s, seed %d (SOAK_SEED=%d repeats the operator's choices)", dur, seed, seed)

	bin := buildBinaries(t)
	upCtx, cancelUp := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelUp()
	l, err := lab.Up(upCtx, lab.Options{Bin: bin, LBs: 0, Logf: t.Logf})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab teardown: %v", err)
		}
	})
	x := l.LBs[0]
	pools := addPoolAddresses(t, l)
	cfg := lab.DefaultConfig()
	cfg.Metrics = metricsAddr.String()
	cfg.Health = soakCheck
	if err := x.WriteConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	if err := x.WaitRouted(upCtx, cfg.VIPs, time.Minute); err != nil {
		t.Fatal(err)
	}
	pid := x.Process().Pid()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vipcastd, last lines:\n%s", x.Process().Tail(30))
		}
	})

	targets := map[string]target{}
	for _, v := range cfg.VIPs {
		targets[v.Addr.String()] = target{key: v.Key(), addr: netip.AddrPortFrom(v.Addr, v.Port)}
	}
	tg := func(a netip.Addr) target { return targets[a.String()] }
	run := func(ctx context.Context, ledger *Ledger) *traffic {
		tr := &traffic{l: l, ledger: ledger, seed: seed}
		tr.start(ctx, tg(lab.VIP4), tg(lab.VIP6), tg(lab.VIP4in6), tg(lab.VIP4Other), tg(lab.VIP4UDP), tg(lab.VIP6UDP))
		return tr
	}

	// Warm-up: a little traffic and a few API and CLI calls, so that what
	// vipcastd creates once (gRPC server state, buffers, the metrics
	// handler) exists before the baseline is taken.
	warm, stopWarm := context.WithTimeout(context.Background(), 5*time.Second)
	wtr := run(warm, NewLedger())
	for _, args := range [][]string{{"vip", "list", "-l"}, {"stats"}, {"hc", "list"}} {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if out, errOut, code := x.CLI(cctx, args...); code != 0 {
			t.Fatalf("vipcast %v: exit %d: %s%s", args, code, out, errOut)
		}
		cancel()
	}
	<-warm.Done()
	stopWarm()
	if err := wtr.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	initial := listVIPs(t, x)
	before, err := settledSample(x, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before: goroutines %d, open files %d, RSS %.1f MiB, heap in use %.1f MiB; maps: %s",
		before.Goroutines, before.FDs, mib(before.RSS), mib(before.HeapInuse), before.Maps)
	udpBufBefore, _ := l.UDPBufferErrors()
	statsBefore := globalStats(t, x)
	ingressBefore, _ := x.IngressDrops()
	load0 := loadAvg()

	// The soak.
	ledger := NewLedger()
	events := &eventLog{}
	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	start := time.Now()
	tr := run(ctx, ledger)
	ch := newChurner(x, cfg.VIPs, pools, seed, events)
	fl := &flapper{l: l, events: events}
	churnDone, flapDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(churnDone); ch.run(ctx, 10*time.Second) }()
	go func() { defer close(flapDone); fl.run(ctx, flapEvery, flapDown, flapPause, seed) }()
	peak := before
	var samples []sample
	for ctx.Err() == nil {
		sleepCtx(ctx, 15*time.Second)
		s, err := measure(x)
		if err != nil {
			t.Errorf("sample during the soak: %v", err)
			continue
		}
		samples = append(samples, s)
		peak.Goroutines, peak.FDs = max(peak.Goroutines, s.Goroutines), max(peak.FDs, s.FDs)
		peak.RSS, peak.HeapInuse = max(peak.RSS, s.RSS), max(peak.HeapInuse, s.HeapInuse)
		t.Logf("%s: goroutines %d, open files %d, RSS %.1f MiB; %s",
			time.Since(start).Round(time.Second), s.Goroutines, s.FDs, mib(s.RSS), s.Maps)
	}
	for _, c := range []chan struct{}{churnDone, flapDone} {
		select {
		case <-c:
		case <-time.After(30 * time.Second):
			t.Fatal("the operator or the flapper did not stop within 30 s")
		}
	}
	if err := tr.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	udpBufAfter, _ := l.UDPBufferErrors()
	statsAfter := globalStats(t, x)
	ingressAfter, _ := x.IngressDrops()
	load1 := loadAvg()

	// Back to the configuration file, every real serving.
	for _, r := range l.Reals {
		_ = r.ResumeServer()
		if err := r.StartServer(); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancelR := context.WithTimeout(context.Background(), time.Minute)
	defer cancelR()
	changes, err := x.Reload(rctx)
	if err != nil {
		t.Fatalf("reload after the soak: %v", err)
	}
	if err := x.WaitRouted(rctx, cfg.VIPs, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	final := listVIPs(t, x)
	after, err := settledSample(x, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after: goroutines %d, open files %d, RSS %.1f MiB, heap in use %.1f MiB; maps: %s",
		after.Goroutines, after.FDs, mib(after.RSS), mib(after.HeapInuse), after.Maps)

	// Verdicts.
	sum := ledger.Summarize(events.all(), grace)
	labLoss := int64(udpBufAfter-udpBufBefore) + int64(ingressAfter-ingressBefore)
	logText := x.Process().Output()
	panics := countPanics(logText)
	rep := report{
		dur: elapsed, seed: seed, sum: sum, ops: ch.ops, viaCLI: ch.viaCLI, flaps: fl.counts,
		before: before, peak: peak, after: after, samples: len(samples), reloadChanges: len(changes),
		labLoss: labLoss, panics: panics, logLevels: logMessages(logText), load0: load0, load1: load1,
		dataplane: statsDelta(statsBefore, statsAfter),
	}
	text := rep.markdown()
	t.Logf("report:\n%s", text)
	if path := os.Getenv("SOAK_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}

	if n := statsAfter.GetXdpAborted() - statsBefore.GetXdpAborted(); n > 0 {
		t.Errorf("the XDP program aborted %d times", n)
	}
	if panics > 0 {
		t.Errorf("vipcastd's log shows %d panic or fatal error lines", panics)
	}
	if !x.Running() || x.Process().Pid() != pid {
		t.Errorf("vipcastd (pid %d) did not run through the soak", pid)
	}
	for _, e := range ch.errs {
		t.Errorf("operator: %s", e)
	}
	for _, e := range fl.errs {
		t.Errorf("flapper: %s", e)
	}
	if initial != final {
		t.Errorf("after the reload, vipcastd's VIPs differ from before the soak:\nbefore:\n%s\nafter:\n%s", initial, final)
	}
	if sum.UnexpectedCount > 0 || sum.Dropped > 0 {
		t.Errorf("%d unexpected client errors (%d more not kept); the first:", sum.UnexpectedCount, sum.Dropped)
		for _, f := range sum.Unexpected {
			t.Errorf("  %s %s %s real=%q %s..%s: %s (%s)", f.Traffic, f.VIP, f.Sig, f.Real,
				f.Start.Format("15:04:05.000"), f.End.Format("15:04:05.000"), f.Err, nearby(events.all(), f))
		}
	}
	if sum.UnexplainedUDP > labLoss {
		t.Errorf("%d datagrams lost outside every churn window, more than the lab's own losses (%d socket-buffer errors and LB ingress drops)",
			sum.UnexplainedUDP, labLoss)
	}
	tcpAttempts := sum.Attempts[TrafficHTTP] + sum.Attempts[TrafficKeepalive] + sum.Attempts[TrafficStream]
	tcpExpected := sum.Expected(TrafficHTTP) + sum.Expected(TrafficKeepalive) + sum.Expected(TrafficStream)
	if float64(tcpExpected) > maxExpectedShare*float64(tcpAttempts) {
		t.Errorf("%d of %d TCP attempts failed for reasons the churn explains: more than %.0f%%", tcpExpected, tcpAttempts, 100*maxExpectedShare)
	}
	for _, kind := range []string{TrafficHTTP, TrafficKeepalive, TrafficStream, TrafficUDP} {
		if sum.OK[kind] == 0 {
			t.Errorf("no %s attempt succeeded", kind)
		}
	}
	for _, v := range cfg.VIPs {
		if sum.ByVIP[v.Key()] == 0 {
			t.Errorf("VIP %s served nothing", v.Key())
		}
	}
	if udp := sum.Attempts[TrafficUDP]; float64(sum.OK[TrafficUDP]) < minUDPEchoShare*float64(udp) {
		t.Errorf("UDP: %d of %d datagrams echoed, want at least %.0f%%", sum.OK[TrafficUDP], udp, 100*minUDPEchoShare)
	}
	planned := float64(elapsed / churnEvery)
	if made := float64(ch.addRemoveOps()); made < minChurnShare*planned {
		t.Errorf("operator made %.0f add/remove changes in %s, want at least %.0f%% of %.0f", made, elapsed.Round(time.Second), 100*minChurnShare, planned)
	}
	if d := after.Goroutines - before.Goroutines; d > maxGoroutineGrowth {
		t.Errorf("goroutines %d -> %d: grew by more than %d", before.Goroutines, after.Goroutines, maxGoroutineGrowth)
	}
	if d := after.FDs - before.FDs; d > maxFDGrowth {
		t.Errorf("open files %d -> %d: grew by more than %d", before.FDs, after.FDs, maxFDGrowth)
	}
	if d := after.RSS - before.RSS; d > maxRSSGrowth {
		t.Errorf("RSS %.1f -> %.1f MiB: grew by more than %.0f MiB", mib(before.RSS), mib(after.RSS), mib(maxRSSGrowth))
	}
	if d := after.HeapInuse - before.HeapInuse; d > maxHeapGrowth {
		t.Errorf("heap in use %.1f -> %.1f MiB: grew by more than %.0f MiB", mib(before.HeapInuse), mib(after.HeapInuse), mib(maxHeapGrowth))
	}
	// The configuration is what it was: so must be every map that follows
	// it. Retired real ids are not entries: they are reused (FIFO).
	b, a := before.Maps, after.Maps
	b.Retired, a.Retired = 0, 0
	if a != b {
		t.Errorf("BPF map entries differ with the same configuration: before %s; after %s", before.Maps, after.Maps)
	}
}

// addRemoveOps counts the changes to the reals' membership.
func (c *churner) addRemoveOps() int64 {
	return c.ops["add real"] + c.ops["drain real"] + c.ops["delete drained real"] +
		c.ops["delete real without draining"] + c.ops["undrain real"]
}

// addPoolAddresses gives every real a second IPv4 and IPv6 address
// (192.0.2.31-33, 2001:db8:0:1::31-33: unused in the lab's plan), so that
// each VIP can have up to six reals on three hosts, and returns the pools
// by family (true: IPv6).
func addPoolAddresses(t *testing.T, l *lab.Lab) map[bool][]poolReal {
	pools := map[bool][]poolReal{}
	for _, r := range l.Reals {
		v4b := r.V4.As4()
		second4 := netip.AddrFrom4([4]byte{v4b[0], v4b[1], v4b[2], byte(30 + r.Index)})
		second6 := netip.MustParseAddr(fmt.Sprintf("2001:db8:0:1::%d", 30+r.Index))
		if _, err := r.NS.Exec("ip", "addr", "add", second4.String()+"/24", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.NS.Exec("ip", "-6", "addr", "add", second6.String()+"/64", "dev", "eth0", "nodad"); err != nil {
			t.Fatal(err)
		}
		pools[false] = append(pools[false], poolReal{r.V4, r.Name}, poolReal{second4, r.Name})
		pools[true] = append(pools[true], poolReal{r.V6, r.Name}, poolReal{second6, r.Name})
	}
	return pools
}

// listVIPs renders vipcastd's VIPs and reals (with weight, state and
// health) one per line, sorted, for comparison.
func listVIPs(t *testing.T, x *lab.LB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := x.API().ListVIPs(ctx, &api.ListVIPsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, v := range resp.GetVips() {
		k := v.GetVip().GetKey()
		for _, r := range v.GetReals() {
			lines = append(lines, fmt.Sprintf("%s:%d/%s %s weight %d %s health %s announced %v", k.GetAddress(), k.GetPort(), k.GetProtocol(),
				r.GetAddress(), r.GetWeight(), r.GetState(), r.GetHealth(), v.GetAnnounced()))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// countPanics counts lines of vipcastd's output that only a crash writes.
func countPanics(log string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") ||
			strings.Contains(line, "[recovered]") || strings.HasPrefix(line, "runtime: ") ||
			(strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, "[running]:")) {
			n++
		}
	}
	return n
}

func globalStats(t *testing.T, x *lab.LB) *api.GlobalStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := x.API().GetStats(ctx, &api.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return s.GetGlobal()
}

// statsDelta is the non-zero differences between two readings of the
// data plane's global counters, by counter name.
func statsDelta(a, b *api.GlobalStats) map[string]int64 {
	out := map[string]int64{}
	av, bv := a.ProtoReflect(), b.ProtoReflect()
	fields := bv.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if d := int64(bv.Get(f).Uint() - av.Get(f).Uint()); d != 0 {
			out[string(f.Name())] = d
		}
	}
	return out
}

// logMessages counts vipcastd's WARN and ERROR log lines by level and
// message.
func logMessages(log string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(log, "\n") {
		var ev struct{ Level, Msg string }
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		if ev.Level == "WARN" || ev.Level == "ERROR" {
			out[fmt.Sprintf("%s %q", ev.Level, ev.Msg)]++
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// nearby names the events close to a failure, for the error message.
func nearby(events []Event, f Failure) string {
	var out []string
	for _, ev := range events {
		if ev.End.After(f.Start.Add(-10*time.Second)) && ev.Start.Before(f.End.Add(10*time.Second)) {
			out = append(out, fmt.Sprintf("%s %s %s %s..%s", ev.Kind, ev.Host, ev.VIP, ev.Start.Format("15:04:05.000"), ev.End.Format("15:04:05.000")))
		}
	}
	if len(out) == 0 {
		return "no churn event within 10 s"
	}
	return "events within 10 s: " + strings.Join(out, "; ")
}

// buildBinaries compiles vipcastd, vipcast and the lab command.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, b := range []struct{ out, pkg string }{
		{lab.DaemonBin, "./cmd/vipcastd"},
		{lab.CLIBin, "./cmd/vipcast"},
		{lab.LabBin, "./test/lab/cmd"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// report is what the soak writes for BENCHMARKS.md.
type report struct {
	dur                 time.Duration
	seed                uint64
	sum                 Summary
	ops                 map[string]int64
	viaCLI              int64
	flaps               map[EventKind]int64
	before, peak, after sample
	samples             int
	reloadChanges       int
	labLoss             int64
	panics              int
	logLevels           map[string]int64
	dataplane           map[string]int64
	load0, load1        string
}

func (r report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	s := r.sum
	p("Run of %s (churn and traffic for %s), seed %d; load average %s at the start, %s at the end.",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), r.dur.Round(time.Second), r.seed, r.load0, r.load1)
	p("")
	p("| traffic | attempts | served | failed | of which explained | bytes |")
	p("|---|---:|---:|---:|---:|---:|")
	for _, k := range []string{TrafficHTTP, TrafficKeepalive, TrafficStream, TrafficUDP} {
		p("| %s | %d | %d | %d | %d | %d |", k, s.Attempts[k], s.OK[k], s.Failed(k), s.Expected(k), s.Bytes[k])
	}
	p("| **total** | %d | %d | %d | %d | %d |", Total(s.Attempts), Total(s.OK), s.Failed(""), s.Expected(""), Total(s.Bytes))
	p("")
	p("Served by VIP: %s. By traffic and real: %s.", Counts(s.ByVIP), Counts(s.ByReal))
	if len(s.Notes) > 0 {
		p("Other client observations: %s.", Counts(s.Notes))
	}
	p("")
	p("Failures by class (classes in test/soak/account.go):")
	p("")
	p("| traffic | class | kind | count |")
	p("|---|---|---|---:|")
	p("%s", s.FailureTable())
	p("")
	p("Unexpected TCP errors: %d. Datagrams lost outside every churn window: %d (the lab's own UDP losses in the same time: %d socket-buffer errors and LB ingress drops).",
		s.UnexpectedCount, s.UnexplainedUDP, r.labLoss)
	p("")
	p("Operator: %s; %d of them through the CLI. Flaps: %d stops, %d pauses. Reload at the end: %d changes.",
		Counts(r.ops), r.viaCLI, r.flaps[FlapStop], r.flaps[FlapPause], r.reloadChanges)
	p("")
	p("| vipcastd | before | peak during | after |")
	p("|---|---:|---:|---:|")
	p("| goroutines | %d | %d | %d |", r.before.Goroutines, r.peak.Goroutines, r.after.Goroutines)
	p("| open files | %d | %d | %d |", r.before.FDs, r.peak.FDs, r.after.FDs)
	p("| RSS (MiB) | %.1f | %.1f | %.1f |", mib(r.before.RSS), mib(r.peak.RSS), mib(r.after.RSS))
	p("| heap in use (MiB) | %.1f | %.1f | %.1f |", mib(r.before.HeapInuse), mib(r.peak.HeapInuse), mib(r.after.HeapInuse))
	p("")
	p("BPF maps before: %s; after: %s (peak from %d samples, one every 15 s).", r.before.Maps, r.after.Maps, r.samples)
	p("Data-plane counters over the soak (non-zero): %s.", orNone(Counts(r.dataplane)))
	p("vipcastd's log: %d panic or fatal lines; warnings and errors by message: %s.", r.panics, orNone(Counts(r.logLevels)))
	return b.String()
}
