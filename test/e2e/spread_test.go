package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"vipcast/lb/maglev"
	"vipcast/test/lab"
)

// chi2Critical is the chi-square value with 2 degrees of freedom (three
// reals) exceeded with probability 1e-4 when the counts follow the
// expected shares: P(X > x) = exp(-x/2) for 2 degrees of freedom, so
// x = 2 ln(1e4) = 18.42. A correct balancer fails this check once in
// 10,000 runs; with 1,000 connections it still catches a share that is off
// by a few percent (a 5-point shift of a 1/6 share alone gives chi2 ≈ 18).
const chi2Critical = 18.42

// ringShares is each real's share of the VIP's Maglev ring for these
// weights: the ring is a pure function of the (address, weight) set, so
// the lab can build the very ring vipcastd built. Flows hash uniformly
// over the slots, so a flow picks real i with probability share[i].
func ringShares(t *testing.T, reals []netip.Addr, weights []uint32) []float64 {
	t.Helper()
	var rs []maglev.Real
	for i, a := range reals {
		rs = append(rs, maglev.Real{Addr: a, ID: uint32(i + 1), Weight: weights[i]})
	}
	ring, err := maglev.Build(rs, maglev.DefaultSize)
	if err != nil {
		t.Fatal(err)
	}
	shares := make([]float64, len(reals))
	for _, id := range ring {
		shares[id-1]++
	}
	for i := range shares {
		shares[i] /= float64(len(ring))
	}
	return shares
}

// chi2 is Pearson's statistic of counts against shares of n.
func chi2(counts []int, shares []float64) float64 {
	n := 0
	for _, c := range counts {
		n += c
	}
	x := 0.0
	for i, c := range counts {
		e := shares[i] * float64(n)
		x += (float64(c) - e) * (float64(c) - e) / e
	}
	return x
}

// Scenario 2: 1,000 short TCP connections spread over the reals as their
// weights say (chi-square test against the ring's shares), and a weight
// change through the CLI shifts the share.
func TestWeightedSpread(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	cfg := lab.DefaultConfig()
	weights := []uint32{1, 2, 3}
	for i, v := range cfg.VIPs {
		if v.Addr == lab.VIP4 {
			for j := range v.Reals {
				cfg.VIPs[i].Reals[j].Weight = int(weights[j])
			}
		}
	}
	if _, err := lb1.Apply(bounded(t, 10*time.Second), cfg); err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, r := range l.Reals {
		addrs = append(addrs, r.V4)
	}

	const n = 1000
	batch := func(firstPort uint16, weights []uint32) []int {
		t.Helper()
		start := time.Now()
		got, errs := lab.Spread(bounded(t, 60*time.Second), l.Client, ap(lab.VIP4, lab.HTTPPort), n, 8, firstPort, lab.DialOptions{})
		if len(errs) > 0 {
			t.Fatalf("%d of %d connections failed: %v", got["error"], n, errs)
		}
		counts := []int{got["real1"], got["real2"], got["real3"]}
		shares := ringShares(t, addrs, weights)
		x := chi2(counts, shares)
		t.Logf("weights %v: %d connections in %s: %s; expected %s; chi2 = %.2f (critical %.2f at p = 1e-4)",
			weights, n, time.Since(start).Round(time.Millisecond), got, expected(shares, n), x, chi2Critical)
		if x > chi2Critical {
			t.Errorf("weights %v: spread %s is not the ring's %s (chi2 %.1f > %.1f)", weights, got, expected(shares, n), x, chi2Critical)
		}
		return counts
	}
	first := batch(20000, weights)

	// real1 from weight 1 to 6: its share goes from 1/6 to 6/11.
	out := cli(t, lb1, "real", "set", vipOf(lab.VIP4, "tcp").Key(), l.Reals[0].V4.String(), "--weight", "6")
	t.Logf("vipcast real set: %s", out)
	newWeights := []uint32{6, 2, 3}
	second := batch(21000, newWeights)
	if x := chi2(second, ringShares(t, addrs, weights)); x < chi2Critical {
		t.Errorf("after the weight change the spread %v still fits the old weights (chi2 %.1f)", second, x)
	}
	if second[0] <= first[0] {
		t.Errorf("real1's share did not grow with its weight: %d then %d of %d", first[0], second[0], n)
	}
}

func expected(shares []float64, n int) string {
	s := ""
	for i, sh := range shares {
		s += fmt.Sprintf("real%d=%.1f ", i+1, sh*float64(n))
	}
	return s[:len(s)-1]
}
