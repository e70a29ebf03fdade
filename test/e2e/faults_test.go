package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"vipcast/test/lab"
)

// Issue 11's faults beyond a killed daemon.

// The router's BGP session to the LB is reset (as when BIRD restarts the
// protocol): the session and the VIP's route come back by themselves.
func TestRouterSessionReset(t *testing.T) {
	l := setup(t)
	if _, err := l.Bird.Query("restart lb1v4"); err != nil {
		t.Fatalf("birdc restart: %v", err)
	}
	start := time.Now()
	waitFor(t, 30*time.Second, 10*time.Millisecond, "lb1v4 established again", func() (bool, string) {
		st := l.Bird.ProtocolState("lb1v4")
		return st == "Established", "lb1v4 " + st
	})
	if _, err := l.Bird.WaitRoute(prefixOf(lab.VIP4), true, 10*time.Second); err != nil {
		t.Fatalf("route after the session reset: %v", err)
	}
	t.Logf("session and route back %s after the reset", time.Since(start).Round(time.Millisecond))
}

// A real's link flaps: its checks follow (down, then up after rise)
// and the VIP, which other reals still serve, never leaves BIRD.
func TestRealInterfaceFlap(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	victim := l.Reals[0]
	vip := vipOf(lab.VIP4, "tcp")
	health := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h, _, err := lb1.RealHealth(ctx, vip, victim.V4)
		if err != nil {
			return err.Error()
		}
		return h
	}
	var missing atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ok, err := l.Bird.HasRoute(prefixOf(lab.VIP4)); err == nil && !ok {
				missing.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() { close(stop); <-done }()

	// The cable is pulled: the bridge port goes down, so the real's eth0
	// loses carrier (its addresses and routes stay, as on a server).
	if _, err := l.Fabric.Exec("ip", "link", "set", victim.Name, "down"); err != nil {
		t.Fatal(err)
	}
	down := waitFor(t, 5*time.Second, 5*time.Millisecond, victim.Name+" down", func() (bool, string) {
		h := health()
		return h == "down", "health " + h
	})
	if _, err := l.Fabric.Exec("ip", "link", "set", victim.Name, "up"); err != nil {
		t.Fatal(err)
	}
	up := waitFor(t, 10*time.Second, 5*time.Millisecond, victim.Name+" up again", func() (bool, string) {
		h := health()
		return h == "up", "health " + h
	})
	t.Logf("interface flap: %s judged down after %s, up %s after the link came back", victim.Name, down.Round(time.Millisecond), up.Round(time.Millisecond))
	// Every VIP (IPv6 ones too, once the address has passed DAD again)
	// is served by all its reals again.
	if err := lb1.WaitRouted(bounded(t, 20*time.Second), lab.DefaultVIPs(), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := missing.Load(); n != 0 {
		t.Errorf("the VIP's route left BIRD during one real's flap (%d polls without it)", n)
	}
}
