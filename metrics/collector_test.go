package metrics

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"vipcast/lb"
)

var update = flag.Bool("update", false, "rewrite testdata/exposition.golden from the current output")

// fakeDataPlane serves fixed counters, or fails.
type fakeDataPlane struct {
	stats       lb.Stats
	statsErr    error
	vips        []lb.VIPCounters
	countersErr error
	tables      []lb.ConnTable
}

func (f *fakeDataPlane) Stats() (lb.Stats, error) { return f.stats, f.statsErr }

func (f *fakeDataPlane) Counters() ([]lb.VIPCounters, error) {
	if f.countersErr != nil {
		return nil, f.countersErr
	}
	return f.vips, nil
}

func (f *fakeDataPlane) VIPs() []lb.VIPInfo {
	out := make([]lb.VIPInfo, len(f.vips))
	for i, v := range f.vips {
		out[i] = v.VIPInfo
	}
	return out
}

func (f *fakeDataPlane) ConnTables() ([]lb.ConnTable, uint64) {
	return f.tables, uint64(len(f.tables)) * 100
}

type fakeHealthcheck struct {
	stats lb.HealthcheckStats
	err   error
}

func (f *fakeHealthcheck) Stats() (lb.HealthcheckStats, error) { return f.stats, f.err }

func key(t testing.TB, s string) lb.VIPKey {
	t.Helper()
	k, err := lb.ParseVIPKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var ip = netip.MustParseAddr

// fixture is a small but complete appliance: IPv4 and IPv6 VIPs, reals in
// every state, one VIP without reals, BGP with one peer down.
func fixture(t testing.TB) (*fakeDataPlane, Source) {
	web, web6, dns, empty := key(t, "203.0.113.1:80/tcp"), key(t, "[2001:db8::1]:443/tcp"),
		key(t, "203.0.113.1:53/udp"), key(t, "203.0.113.2:0/tcp")
	vip := func(k lb.VIPKey, c lb.Counter, reals ...any) lb.VIPCounters {
		v := lb.VIPCounters{VIPInfo: lb.VIPInfo{VIP: lb.VIP{Key: k}}, Counter: c}
		for i := 0; i < len(reals); i += 2 {
			v.Reals = append(v.Reals, reals[i].(lb.Real))
			v.RealCounters = append(v.RealCounters, reals[i+1].(lb.Counter))
		}
		return v
	}
	real := func(a string, s lb.RealState) lb.Real { return lb.Real{Addr: ip(a), Weight: 100, State: s} }
	dp := &fakeDataPlane{
		stats: lb.Stats{
			XdpAborted: 1, XdpDrop: 120, XdpPass: 5000, XdpTx: 98000,
			ConnHit: 90000, FallbackHit: 12, ConnMissTcpSyn: 7000, ConnMissTcpOther: 30,
			ConnMissUdp: 900, ConnRepickDown: 58,
			IcmpEchoReply: 40, IcmpTooBig: 3, IcmpErrorFwd: 2,
			DropFragment: 4, DropIpOptions: 5, DropMalformed: 6, DropNoReal: 100, DropNoGateway: 0, DropTooBig: 5,
			PassMalformed: 9,
		},
		// Sorted as lb.Balancer.Counters sorts: address, port, protocol.
		vips: []lb.VIPCounters{
			vip(dns, lb.Counter{Packets: 900, Bytes: 72_000},
				real("192.0.2.11", lb.Up), lb.Counter{Packets: 900, Bytes: 72_000}),
			vip(web, lb.Counter{Packets: 96000, Bytes: 81_000_000},
				real("192.0.2.11", lb.Up), lb.Counter{Packets: 60000, Bytes: 50_000_000},
				real("192.0.2.12", lb.Draining), lb.Counter{Packets: 35000, Bytes: 30_000_000},
				real("192.0.2.13", lb.Down), lb.Counter{Packets: 1000, Bytes: 1_000_000}),
			vip(empty, lb.Counter{}),
			vip(web6, lb.Counter{Packets: 1100, Bytes: 900_000},
				real("2001:db8:1::11", lb.Up), lb.Counter{Packets: 1100, Bytes: 900_000}),
		},
		tables: []lb.ConnTable{{CPU: 0, Node: -1, Entries: 500_000}, {CPU: 1, Node: -1, Entries: 500_000}},
	}
	src := Source{
		DataPlane:   dp,
		Healthcheck: &fakeHealthcheck{stats: lb.HealthcheckStats{Encapsulated: 4000, NoMark: 123456, UnknownMark: 2, NotIp: 1, Errors: 0}},
		RealHealth: func() []RealHealth {
			return []RealHealth{
				{web, ip("192.0.2.11"), true},
				{web, ip("192.0.2.12"), true},
				{web, ip("192.0.2.13"), false},
				{web6, ip("2001:db8:1::11"), true},
				{dns, ip("192.0.2.11"), true},
			}
		},
		Announced: func() []netip.Addr { return []netip.Addr{ip("203.0.113.1"), ip("2001:db8::1")} },
		Peers: func() []PeerState {
			return []PeerState{{Peer: "192.0.2.1", Up: true}, {Peer: "2001:db8:ffff::1", Up: false}}
		},
		GatewayKnown: func() bool { return true },
		BuildVersion: "v1.2.3",
	}
	return dp, src
}

// newTestCollector is NewCollector with the Go version pinned, so the
// golden file does not depend on the toolchain.
func newTestCollector(src Source) *Collector {
	c := NewCollector(src)
	c.goVersion = "go1.26.0"
	return c
}

// scrape fetches /metrics over HTTP as Prometheus would (text format).
func scrape(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", Path, resp.Status, body)
	}
	return string(body)
}

// ours keeps the vipcast_ families of an exposition; the Go and process
// collectors' output depends on the runtime.
func ours(exposition string) string {
	var b strings.Builder
	for line := range strings.Lines(exposition) {
		name := line
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name = rest
		} else if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name = rest
		}
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

func TestExpositionGolden(t *testing.T) {
	_, src := fixture(t)
	c := newTestCollector(src)
	for _, d := range []time.Duration{300 * time.Microsecond, 2 * time.Millisecond, 4 * time.Millisecond, 40 * time.Millisecond} {
		c.CheckLatency().Observe("203.0.113.1:80/tcp@192.0.2.11", true, d)
	}
	c.CheckLatency().Observe("203.0.113.1:80/tcp@192.0.2.13", false, time.Second)
	c.CheckLatency().Observe("203.0.113.1:80/tcp@192.0.2.13", false, 800*time.Microsecond)

	full := scrape(t, Handler(NewRegistry(c)))
	if !strings.Contains(full, "\ngo_goroutines ") || !strings.Contains(full, "\nprocess_") {
		t.Errorf("exposition lacks the Go or process collector's metrics")
	}
	got := ours(full)

	golden := filepath.Join("testdata", "exposition.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s (go test -update rewrites it):\n%s", golden, lineDiff(string(want), got))
	}

	lintClean(t, got)
}

// lintClean runs promlint over an exposition: no problem is acceptable.
func lintClean(t *testing.T, exposition string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(exposition)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for l := range strings.Lines(s) {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var b strings.Builder
	for l := range strings.Lines(want) {
		if g[l] == 0 {
			b.WriteString("- " + l)
		}
	}
	for l := range strings.Lines(got) {
		if w[l] == 0 {
			b.WriteString("+ " + l)
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)"
	}
	return b.String()
}

// sampleLines returns the exposition's sample lines (no comments) that
// start with prefix.
func sampleLines(exposition, prefix string) []string {
	var out []string
	for l := range strings.Lines(exposition) {
		if strings.HasPrefix(l, prefix) {
			out = append(out, strings.TrimSuffix(l, "\n"))
		}
	}
	return out
}

func hasLine(exposition, line string) bool {
	for l := range strings.Lines(exposition) {
		if strings.TrimSuffix(l, "\n") == line {
			return true
		}
	}
	return false
}

// A part of the data plane that cannot be read is left out of the scrape
// and counted; the rest is served with status 200, and the failure is
// logged once when it starts and once when it clears.
func TestPartialFailure(t *testing.T) {
	dp, src := fixture(t)
	dp.statsErr = errors.New("read stats: bad file descriptor")
	dp.countersErr = errors.New("read real counters: bad file descriptor")
	hc := &fakeHealthcheck{err: errors.New("read healthcheck stats: bad file descriptor")}
	src.Healthcheck = hc
	var logs bytes.Buffer
	src.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h := Handler(NewRegistry(newTestCollector(src)))

	for i := 1; i <= 2; i++ {
		got := scrape(t, h)
		for _, prefix := range []string{"vipcast_xdp_actions_total", "vipcast_conn_table_lookups_total",
			"vipcast_healthcheck_encap_packets_total", "vipcast_real_packets_total", "vipcast_vip_bytes_total"} {
			if l := sampleLines(got, prefix); l != nil {
				t.Errorf("scrape %d: unreadable part reported: %q", i, l)
			}
		}
		for _, line := range []string{
			fmt.Sprintf(`vipcast_scrape_errors_total{part="lb_stats"} %d`, i),
			fmt.Sprintf(`vipcast_scrape_errors_total{part="counters"} %d`, i),
			fmt.Sprintf(`vipcast_scrape_errors_total{part="healthcheck_stats"} %d`, i),
			// States come from VIPs() when the counters cannot be read.
			`vipcast_real_up{real="192.0.2.12",vip="203.0.113.1:80/tcp"} 0`,
			`vipcast_vip_reals{state="draining",vip="203.0.113.1:80/tcp"} 1`,
			`vipcast_vip_unhealthy_reals{vip="203.0.113.1:80/tcp"} 1`,
			`vipcast_bgp_peer_up{peer="192.0.2.1"} 1`,
			`vipcast_gateway_mac_known 1`,
		} {
			if !hasLine(got, line) {
				t.Errorf("scrape %d: missing %s", i, line)
			}
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 3 {
		t.Errorf("%d warnings after two failing scrapes, want 3 (one per failing part):\n%s", n, logs.String())
	}

	dp.statsErr, dp.countersErr = nil, nil
	logs.Reset()
	got := scrape(t, h)
	for _, line := range []string{
		`vipcast_xdp_actions_total{action="tx"} 98000`,
		`vipcast_real_packets_total{real="192.0.2.12",vip="203.0.113.1:80/tcp"} 35000`,
		`vipcast_scrape_errors_total{part="lb_stats"} 2`,
		`vipcast_scrape_errors_total{part="counters"} 2`,
		`vipcast_scrape_errors_total{part="healthcheck_stats"} 3`,
	} {
		if !hasLine(got, line) {
			t.Errorf("after recovery: missing %s", line)
		}
	}
	if n := strings.Count(logs.String(), "level=INFO"); n != 2 {
		t.Errorf("%d info lines on recovery of two parts, want 2:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 0 {
		t.Errorf("a part still failing was logged again:\n%s", logs.String())
	}
}

// Parts the daemon does not have are absent, not reported as 0.
func TestOptionalParts(t *testing.T) {
	dp, _ := fixture(t)
	got := scrape(t, Handler(NewRegistry(newTestCollector(Source{DataPlane: dp}))))
	for _, name := range []string{"vipcast_bgp_peer_up", "vipcast_vip_announced", "vipcast_vip_unhealthy_reals",
		"vipcast_healthcheck_encap_packets_total", "vipcast_gateway_mac_known"} {
		if l := sampleLines(got, name); l != nil {
			t.Errorf("%s reported without its source: %q", name, l)
		}
	}
	for _, line := range []string{
		`vipcast_build_info{goversion="go1.26.0",version="unknown"} 1`,
		`vipcast_real_up{real="192.0.2.11",vip="203.0.113.1:80/tcp"} 1`,
		`vipcast_vip_reals{state="up",vip="203.0.113.2:0/tcp"} 0`,
	} {
		if !hasLine(got, line) {
			t.Errorf("missing %s", line)
		}
	}
}

// Duplicates from the daemon would make an invalid exposition.
func TestDuplicatesDropped(t *testing.T) {
	_, src := fixture(t)
	src.Peers = func() []PeerState { return []PeerState{{"192.0.2.1", true}, {"192.0.2.1", false}} }
	src.Announced = func() []netip.Addr { return []netip.Addr{ip("203.0.113.1"), ip("203.0.113.1"), ip("198.51.100.7")} }
	got := scrape(t, Handler(NewRegistry(newTestCollector(src))))
	for _, line := range []string{
		`vipcast_bgp_peer_up{peer="192.0.2.1"} 1`,
		`vipcast_vip_announced{address="203.0.113.1"} 1`,
		`vipcast_vip_announced{address="203.0.113.2"} 0`,
		// Announced but not (or no longer) a VIP: still reported.
		`vipcast_vip_announced{address="198.51.100.7"} 1`,
	} {
		if !hasLine(got, line) {
			t.Errorf("missing %s", line)
		}
	}
	lintClean(t, got)
}

// A pedantic registry checks every series against its Desc, for
// duplicates, label order and UTF-8, and Describe against Collect.
func TestPedantic(t *testing.T) {
	_, src := fixture(t)
	c := newTestCollector(src)
	c.CheckLatency().Observe("x", true, time.Millisecond)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 20 {
		t.Errorf("%d families", len(mfs))
	}
}

// Scrapes may run concurrently with each other and with Observe.
func TestConcurrentScrapes(t *testing.T) {
	_, src := fixture(t)
	c := newTestCollector(src)
	reg := NewRegistry(c)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for i := range 1000 {
				c.CheckLatency().Observe("x", i%2 == 0, time.Duration(i)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	got := scrape(t, Handler(reg))
	if !hasLine(got, `vipcast_health_check_duration_seconds_count{result="pass"} 2000`) ||
		!hasLine(got, `vipcast_health_check_duration_seconds_count{result="fail"} 2000`) {
		t.Errorf("observations lost:\n%s", sampleLines(got, "vipcast_health_check_duration_seconds_count"))
	}
}

// Observe runs after every health check, from the checker's goroutines.
func TestObserveDoesNotAllocate(t *testing.T) {
	l := newCheckLatency()
	if n := testing.AllocsPerRun(1000, func() { l.Observe("203.0.113.1:80/tcp@192.0.2.11", true, time.Millisecond) }); n != 0 {
		t.Errorf("Observe allocates %v times", n)
	}
}
