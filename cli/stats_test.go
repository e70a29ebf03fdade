package cli

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"vipcast/api"
)

func TestStats(t *testing.T) {
	runScripts(t, []script{
		{name: "stats", steps: []string{
			"stats",
			"stats -j",
		}},
		{name: "stats_empty", empty: true, steps: []string{
			"stats",
		}},
		{name: "stats_watch", steps: []string{
			"stats -w --count 2 --interval 10ms",
			"stats -w --count 2 --interval 10ms -j",
		}},
		{name: "stats_watch_idle", empty: true,
			// No lookups: percentages are unknown, not 0.
			setup: func(_ *testing.T, f *fakeServer, _ string) { f.idle = true },
			steps: []string{"stats -w --count 1 --interval 10ms"}},
		{name: "stats_errors", steps: []string{
			"! stats --count 2",
			"! stats -w --interval 0s",
			"! stats -w --count -1",
			"! stats extra",
		}},
	})
}

// TestStatsWatchUntilCancelled checks that an unbounded watch ends without
// error when its context does (SIGINT in vipcast).
func TestStatsWatchUntilCancelled(t *testing.T) {
	f := newFake()
	f.seed()
	sock := serve(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel)
	stdout, stderr, code := runCLIContext(ctx, sock, "stats", "-w", "--interval", "10ms", "-j")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 2 {
		t.Fatalf("want several lines before the cancel, got %q", stdout)
	}
	for _, l := range lines {
		var r StatsRates
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q is not one JSON document: %v", l, err)
		}
	}
}

func TestRates(t *testing.T) {
	at := func(sec int64) int64 { return fakeEpoch.Add(time.Duration(sec) * time.Second).UnixNano() }
	vip := func(addr string, packets uint64) *api.VIPStats {
		return &api.VIPStats{Key: &api.VIPKey{Address: addr, Port: 80, Protocol: "tcp"}, Counter: &api.Counter{Packets: packets}}
	}
	prev := &api.GetStatsResponse{
		ReadAtUnixNano: at(0),
		Global:         &api.GlobalStats{ConnHit: 100, ConnMissTcpSyn: 10, FallbackHit: 4},
		Vips:           []*api.VIPStats{vip("203.0.113.1", 1000), vip("203.0.113.2", 500)},
	}
	cur := &api.GetStatsResponse{
		ReadAtUnixNano: at(2),
		Global:         &api.GlobalStats{ConnHit: 280, ConnMissTcpSyn: 20, FallbackHit: 10},
		// .2 went away, .3 is new: only what was counted in the interval.
		Vips: []*api.VIPStats{vip("203.0.113.1", 1400), vip("203.0.113.3", 200)},
	}
	r := rates(prev, cur, time.Hour)
	if r.IntervalSeconds != 2 {
		t.Errorf("interval %v s, want 2 (from read_at, not wall time)", r.IntervalSeconds)
	}
	if r.PacketsPerSecond != 300 {
		t.Errorf("packets/s %v, want 300", r.PacketsPerSecond)
	}
	if r.FallbackHitsPerSecond != 3 {
		t.Errorf("fallback/s %v, want 3", r.FallbackHitsPerSecond)
	}
	if r.ConnHitPercent == nil || math.Abs(*r.ConnHitPercent-180.0/190*100) > 1e-9 {
		t.Errorf("hit %% %v, want %v", r.ConnHitPercent, 180.0/190*100)
	}
	if r.MissTCPSynPercent == nil || math.Abs(*r.MissTCPSynPercent+*r.ConnHitPercent-100) > 1e-9 {
		t.Errorf("syn miss %% %v does not complete hit %% to 100", r.MissTCPSynPercent)
	}

	// A reset counter (a new data plane) counts from zero; a server without
	// read times falls back to wall time.
	reset := &api.GetStatsResponse{Global: &api.GlobalStats{ConnHit: 50}}
	r = rates(&api.GetStatsResponse{Global: &api.GlobalStats{ConnHit: 280}}, reset, 5*time.Second)
	if r.IntervalSeconds != 5 || r.ConnHitPercent == nil || *r.ConnHitPercent != 100 {
		t.Errorf("after reset: %+v", r)
	}
}

// TestGlobalCounterNames keeps the table's names equal to the JSON names.
func TestGlobalCounterNames(t *testing.T) {
	typ := reflect.TypeFor[GlobalStats]()
	counters := GlobalStats{}.counters()
	if len(counters) != typ.NumField() {
		t.Fatalf("%d counters in the table, %d fields", len(counters), typ.NumField())
	}
	for i, c := range counters {
		if tag := typ.Field(i).Tag.Get("json"); tag != c.name {
			t.Errorf("counter %d: table says %q, JSON %q", i, c.name, tag)
		}
	}
}
