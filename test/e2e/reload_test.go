package e2e

import (
	"strings"
	"testing"
	"time"

	"vipcast/test/lab"
)

// Scenario 8: the configuration file gains a VIP and loses another; `vipcast
// reload` applies it. The new VIP is announced and served, the removed one
// is withdrawn, and connections to an untouched VIP (a transfer in flight
// and a kept-alive connection) carry on undisturbed.
func TestReloadAddsAndRemovesVIPs(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]

	stream, err := lab.StartStream(l.Client, ap(lab.VIP4, lab.HTTPPort), 2<<20, 2*time.Second, lab.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := lab.DialHTTP(l.Client, ap(lab.VIP6, lab.HTTPPort), lab.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	first, err := keep.Get("/", false, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	cfg := lab.DefaultConfig()
	var vips []lab.VIPCfg
	for _, v := range cfg.VIPs {
		if v.Addr != lab.VIP4Other {
			vips = append(vips, v)
		}
	}
	added := lab.VIPCfg{Addr: lab.VIP4New, Port: lab.HTTPPort, Proto: "tcp", Reals: lab.Reals4()}
	cfg.VIPs = append(vips, added)
	if err := lb1.WriteConfig(cfg); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	out := cli(t, lb1, "reload")
	t.Logf("vipcast reload:\n%s", strings.TrimSpace(out))
	if !strings.Contains(out, lab.VIP4New.String()) || !strings.Contains(out, lab.VIP4Other.String()) {
		t.Errorf("reload output does not name the added %s and the removed %s", lab.VIP4New, lab.VIP4Other)
	}
	if _, err := l.Bird.WaitRoute(prefixOf(lab.VIP4Other), false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	gone := time.Since(t0)
	if _, err := l.Bird.WaitRoute(prefixOf(lab.VIP4New), true, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	announced := time.Since(t0)
	// Announced with its first healthy real; the others follow.
	if err := lb1.WaitRouted(bounded(t, 10*time.Second), []lab.VIPCfg{added}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	allUp := time.Since(t0)
	t.Logf("after the reload (timed from the command): %s left BIRD within %s; %s entered it after %s, all its reals up after %s (rise checks)",
		lab.VIP4Other, gone.Round(time.Millisecond), lab.VIP4New, announced.Round(time.Millisecond), allUp.Round(time.Millisecond))

	got, errs := lab.Spread(bounded(t, 20*time.Second), l.Client, ap(lab.VIP4New, lab.HTTPPort), 30, 4, 0, lab.DialOptions{})
	if len(errs) > 0 || len(got) < 2 {
		t.Errorf("the added VIP %s: %s, errors %v", lab.VIP4New, got, errs)
	}
	if rep, err := lab.Get(l.Client, ap(lab.VIP4Other, lab.HTTPPort), "/", lab.DialOptions{Timeout: 500 * time.Millisecond}); err == nil {
		t.Errorf("the removed VIP %s still answers (from %s)", lab.VIP4Other, rep.Real)
	}

	n, err := stream.Finish()
	if err != nil {
		t.Errorf("the transfer to the untouched %s broke across the reload: %v", lab.VIP4, err)
	}
	second, err := keep.Get("/", false, 2*time.Second)
	if err != nil {
		t.Errorf("the kept-alive connection to the untouched %s broke across the reload: %v", lab.VIP6, err)
	} else if second.Real != first.Real {
		t.Errorf("the kept-alive connection to %s moved from %s to %s", lab.VIP6, first.Real, second.Real)
	}
	t.Logf("untouched VIPs: transfer from %s completed (%d bytes), kept-alive connection still on %s", stream.Real, n, second.Real)
}
