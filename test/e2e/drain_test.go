package e2e

import (
	"testing"
	"time"

	"vipcast/test/lab"
)

// Scenario 5: a long TCP transfer runs from a real; the operator drains
// that real (vipcast real drain). The transfer completes, byte for byte,
// while every new connection goes to the other reals.
func TestDrainDuringTransfer(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	vip := vipOf(lab.VIP4, "tcp")
	const (
		size     = 4 << 20
		duration = 3 * time.Second
	)
	start := time.Now()
	s, err := lab.StartStream(l.Client, ap(lab.VIP4, lab.HTTPPort), size, duration, lab.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var drained *lab.Real
	for _, r := range l.Reals {
		if r.Name == s.Real {
			drained = r
		}
	}
	if drained == nil {
		t.Fatalf("stream answered by %q, not a lab real", s.Real)
	}
	out := cli(t, lb1, "real", "drain", vip.Key(), drained.V4.String())
	t.Logf("transfer of %d MiB over %s from %s (client %s); %s", size>>20, duration, s.Real, s.Local, out)
	tDrain := time.Since(start)

	got, errs := lab.Spread(bounded(t, 20*time.Second), l.Client, ap(lab.VIP4, lab.HTTPPort), 300, 4, 0, lab.DialOptions{})
	tSpread := time.Since(start)
	if len(errs) > 0 {
		t.Errorf("new connections while %s drains: %v", drained.Name, errs)
	}
	if got[drained.Name] != 0 {
		t.Errorf("%d of 300 new connections went to the draining %s: %s", got[drained.Name], drained.Name, got)
	}
	n, err := s.Finish()
	took := time.Since(start)
	t.Logf("drained at %s; 300 new connections by %s went to %s; the transfer ended at %s with %d bytes (err %v)",
		tDrain.Round(time.Millisecond), tSpread.Round(time.Millisecond), got, took.Round(time.Millisecond), n, err)
	if err != nil {
		t.Errorf("the transfer from the draining real broke: %v", err)
	}
	if tSpread > duration {
		t.Errorf("the new connections took until %s, after the transfer's %s: the test did not overlap them", tSpread, duration)
	}
	h, state, err := lb1.RealHealth(bounded(t, 5*time.Second), vip, drained.V4)
	if err != nil || state != "draining" || h != "up" {
		t.Errorf("%s after the drain: state %q health %q (%v), want draining and up", drained.Name, state, h, err)
	}
}
