package cli

import "testing"

func TestNeighbor(t *testing.T) {
	runScripts(t, []script{
		{name: "neighbor", steps: []string{
			"neighbor",
			"neighbor -j",
		}},
		{name: "neighbor_empty", empty: true, steps: []string{
			"neighbor -j",
		}},
	})
}

func TestUpDown(t *testing.T) {
	for secs, want := range map[int64]string{
		0:      "never",
		59:     "00:00:59",
		3661:   "01:01:01",
		93784:  "1d 02:03:04",
		864000: "10d 00:00:00",
	} {
		if got := upDown(secs); got != want {
			t.Errorf("upDown(%d) = %q, want %q", secs, got, want)
		}
	}
}
