package bgp

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	up := func(h, total, min int) ServiceHealth {
		return ServiceHealth{Key: "svc", Healthy: h, Total: total, MinHealthy: min}
	}
	tests := []struct {
		name     string
		services []ServiceHealth
		mode     string
		want     bool
	}{
		{"no services", nil, "", false},
		{"no services any", nil, ModeAnyService, false},
		{"one healthy default min", []ServiceHealth{up(1, 3, 0)}, "", true},
		{"none healthy", []ServiceHealth{up(0, 3, 0)}, "", false},
		{"no reals at all", []ServiceHealth{up(0, 0, 0)}, "", false},
		{"below min_healthy", []ServiceHealth{up(1, 3, 2)}, "", false},
		{"exactly min_healthy", []ServiceHealth{up(2, 3, 2)}, "", true},
		{"min above total never", []ServiceHealth{up(3, 3, 4)}, "", false},
		{"all: both ok", []ServiceHealth{up(1, 2, 1), up(2, 2, 2)}, ModeAllServices, true},
		{"all: one down", []ServiceHealth{up(1, 2, 1), up(0, 2, 1)}, ModeAllServices, false},
		{"default is all: one down", []ServiceHealth{up(1, 2, 1), up(0, 2, 1)}, "", false},
		{"any: one down", []ServiceHealth{up(1, 2, 1), up(0, 2, 1)}, ModeAnyService, true},
		{"any: all down", []ServiceHealth{up(0, 2, 1), up(1, 2, 2)}, ModeAnyService, false},
		{"unknown mode acts as all", []ServiceHealth{up(1, 2, 1), up(0, 2, 1)}, "most", false},
		{"negative min means 1", []ServiceHealth{up(0, 1, -5)}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.services, Policy{Mode: tc.mode}); got != tc.want {
				t.Fatalf("Decide(%+v, %q) = %v, want %v", tc.services, tc.mode, got, tc.want)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		mode string
		ok   bool
	}{{"", true}, {ModeAllServices, true}, {ModeAnyService, true}, {"any", false}, {"ALL_SERVICES", false}} {
		err := Policy{Mode: tc.mode}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.mode, err, tc.ok)
		}
	}
}

func TestHoldDown(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type step struct {
		t       float64
		want    bool
		out     bool
		recheck float64 // 0 = none
	}
	tests := []struct {
		name  string
		delay time.Duration
		steps []step
	}{
		{"first announce is immediate", 5 * time.Second, []step{
			{0, true, true, 0},
		}},
		{"withdraw is immediate", 5 * time.Second, []step{
			{0, true, true, 0}, {1, false, false, 0},
		}},
		{"re-announce waits for delay", 5 * time.Second, []step{
			{0, true, true, 0}, {1, false, false, 0},
			{2, true, false, 7}, {4, true, false, 7}, {7, true, true, 0}, {8, true, true, 0},
		}},
		{"flap inside delay restarts the wait", 5 * time.Second, []step{
			{0, true, true, 0}, {1, false, false, 0},
			{2, true, false, 7}, {3, false, false, 0}, {4, true, false, 9}, {9, true, true, 0},
		}},
		{"never announced then up is immediate", 5 * time.Second, []step{
			{0, false, false, 0}, {1, true, true, 0},
		}},
		{"zero delay disables", 0, []step{
			{0, true, true, 0}, {1, false, false, 0}, {1.5, true, true, 0},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := HoldDown{Delay: tc.delay}
			for i, s := range tc.steps {
				out, recheck := h.Update(at(s.t), s.want)
				var wantRecheck time.Time
				if s.recheck != 0 {
					wantRecheck = at(s.recheck)
				}
				if out != s.out || !recheck.Equal(wantRecheck) {
					t.Fatalf("step %d (t=%v want=%v): got (%v, %v), want (%v, %v)", i, s.t, s.want, out, recheck, s.out, wantRecheck)
				}
			}
		})
	}
}
