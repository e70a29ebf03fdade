package health

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestMachineRiseFall(t *testing.T) {
	// Results: + pass, - fail. Transitions: "i:up" means result i (0-based)
	// took the state to up.
	tests := []struct {
		name        string
		rise, fall  int
		results     string
		transitions string
		final       State
	}{
		{"starts down, one pass is not enough", 2, 3, "+", "", Down},
		{"rise passes in a row go up", 2, 3, "++", "1:up", Up},
		{"rise 1 goes up at once", 1, 1, "+", "0:up", Up},
		{"a failure restarts the rise count", 2, 3, "+-+-++", "5:up", Up},
		{"failures while down change nothing", 2, 3, "-----", "", Down},
		{"fall failures in a row go down", 2, 3, "++---", "1:up 4:down", Down},
		{"a pass restarts the fall count", 2, 3, "++--+--+--", "1:up", Up},
		{"flapping with rise 1 fall 1", 1, 1, "+-+-", "0:up 1:down 2:up 3:down", Down},
		{"up stays up on passes", 2, 2, "+++++", "1:up", Up},
		{"down and back up", 3, 2, "+++--+++", "2:up 4:down 7:up", Up},
		{"long failure run goes down once", 1, 2, "+------", "0:up 2:down", Down},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m machine
			if m.state != Down {
				t.Fatalf("zero machine is %s, want down", m.state)
			}
			var got []string
			for i, r := range tc.results {
				if m.observe(r == '+', tc.rise, tc.fall) {
					got = append(got, fmt.Sprintf("%d:%s", i, m.state))
				}
			}
			if g := strings.Join(got, " "); g != tc.transitions {
				t.Errorf("transitions %q, want %q", g, tc.transitions)
			}
			if m.state != tc.final {
				t.Errorf("final state %s, want %s", m.state, tc.final)
			}
		})
	}
}

func TestMachineCounters(t *testing.T) {
	var m machine
	for _, ok := range []bool{true, true, true, false, false} {
		m.observe(ok, 2, 3)
	}
	if m.successes != 0 || m.failures != 2 || m.state != Up {
		t.Fatalf("after +++--: successes %d failures %d state %s, want 0 2 up", m.successes, m.failures, m.state)
	}
	m.observe(true, 2, 3)
	if m.successes != 1 || m.failures != 0 {
		t.Fatalf("after +++--+: successes %d failures %d, want 1 0", m.successes, m.failures)
	}
}

func TestStateText(t *testing.T) {
	b, err := json.Marshal(map[string]State{"a": Up, "b": Down})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"a":"up","b":"down"}` {
		t.Fatalf("JSON %s", b)
	}
	var s State
	if err := s.UnmarshalText([]byte("up")); err != nil || s != Up {
		t.Fatalf("unmarshal up: %v %s", err, s)
	}
	if err := s.UnmarshalText([]byte("draining")); err == nil {
		t.Fatal("unmarshal draining: no error; the checker has no operator states")
	}
	if got := State(7).String(); got != "state(7)" {
		t.Fatalf("State(7) = %q", got)
	}
}
