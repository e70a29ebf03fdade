package cli

import "testing"

func TestHealth(t *testing.T) {
	runScripts(t, []script{
		{name: "health", steps: []string{
			"health",
			"health -j",
		}},
		{name: "health_empty", empty: true, steps: []string{
			"health",
			"health -j",
		}},
	})
}

func TestLatency(t *testing.T) {
	for ns, want := range map[int64]string{
		0:             "-",
		999:           "1µs",
		312_000:       "312µs",
		1_234_567:     "1.23ms",
		2_500_000_000: "2.5s",
	} {
		if got := latency(ns); got != want {
			t.Errorf("latency(%d) = %q, want %q", ns, got, want)
		}
	}
}
