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
	for _, tc := range []struct {
		secs  int64
		state string
		want  string
	}{
		{0, "established", "00:00:00"}, // up for less than a second
		{59, "established", "00:00:59"},
		{3661, "established", "01:01:01"},
		{93784, "established", "1d 02:03:04"},
		{864000, "established", "10d 00:00:00"},
		{0, "active", "never"},
		{0, "idle", "never"},
	} {
		if got := upDown(tc.secs, tc.state); got != tc.want {
			t.Errorf("upDown(%d, %s) = %q, want %q", tc.secs, tc.state, got, tc.want)
		}
	}
}
