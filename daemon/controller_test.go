package daemon

import (
	"net/netip"
	"testing"

	"vipcast/health"
	"vipcast/lb"
)

// What the data plane gets for each combination of the operator's state,
// health and move_flows_on_down.
func TestEffectiveRealState(t *testing.T) {
	k := lb.VIPKey{Addr: netip.MustParseAddr("203.0.113.1"), Port: 80, Proto: lb.TCP}
	addr := netip.MustParseAddr("192.0.2.11")
	cases := []struct {
		admin     adminState
		health    health.State
		moveFlows bool
		checked   bool
		want      lb.RealState
	}{
		{adminUp, health.Up, false, true, lb.Up},
		{adminUp, health.Down, false, true, lb.Draining}, // out of the ring, flows stay
		{adminUp, health.Down, true, true, lb.Down},      // flows re-placed
		{adminDrain, health.Up, false, true, lb.Draining},
		{adminDrain, health.Down, true, true, lb.Down},
		{adminDisabled, health.Up, false, true, lb.Down},
		{adminUp, health.Down, false, false, lb.Up}, // no checker: operator's word
		{adminDrain, health.Down, false, false, lb.Draining},
	}
	for _, tc := range cases {
		c := &controller{health: map[realKey]health.State{{k, addr}: tc.health}}
		if tc.checked {
			c.checker = health.New(health.Options{})
		}
		r := &wantReal{addr: addr, weight: 3, admin: tc.admin, moveFlows: tc.moveFlows}
		got := c.effective(k, r)
		if got.State != tc.want || got.Weight != 3 {
			t.Errorf("admin %s, health %s, move_flows_on_down %v, checked %v: got %s (weight %d), want %s",
				tc.admin, tc.health, tc.moveFlows, tc.checked, got.State, got.Weight, tc.want)
		}
	}
}
