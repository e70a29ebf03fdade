package e2e

import (
	"strings"
	"testing"
	"time"

	"vipcast/test/lab"
)

// Issue 11's first fault: vipcastd is killed with SIGKILL during traffic.
// The data plane is pinned and attached, so established and new flows keep
// being forwarded with the last programmed state while no daemon runs, and
// the daemon started next adopts it.
func TestKill9DuringTraffic(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	udp := startUDPStream(t, l, time.Millisecond)
	time.Sleep(200 * time.Millisecond)

	lb1.Process().Kill()
	if lb1.Running() {
		t.Fatal("vipcastd still running after SIGKILL")
	}
	// With no daemon at all: new connections through the VIP.
	served := map[string]int{}
	for i := range 20 {
		rep, err := lab.Get(l.Client, ap(lab.VIP4, lab.HTTPPort), "/", lab.DialOptions{})
		if err != nil {
			t.Fatalf("new connection %d with vipcastd dead: %v", i, err)
		}
		served[rep.Real]++
	}
	t.Logf("with vipcastd killed: 20 new connections served by %v", served)
	time.Sleep(500 * time.Millisecond) // the UDP flow runs on, daemonless

	start := time.Now()
	if err := lb1.Start(); err != nil {
		t.Fatal(err)
	}
	if log := lb1.Process().Output(); !strings.Contains(log, "adopted the data plane") {
		t.Errorf("the daemon started after SIGKILL did not adopt the data plane:\n%s", log)
	}
	if err := lb1.WaitRouted(bounded(t, 20*time.Second), lab.DefaultVIPs(), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted after SIGKILL: every real up and routed after %s", time.Since(start).Round(time.Millisecond))
	// Leave the lab as found: the BGP sessions of the new daemon up.
	waitFor(t, 20*time.Second, 10*time.Millisecond, "LB1's BGP sessions back", func() (bool, string) {
		v4, v6 := l.Bird.ProtocolState("lb1v4"), l.Bird.ProtocolState("lb1v6")
		return v4 == "Established" && v6 == "Established", "BIRD: lb1v4 " + v4 + ", lb1v6 " + v6
	})
	time.Sleep(200 * time.Millisecond)
	sent, lost, reals, errs := udp.finish()
	t.Logf("UDP stream across the kill: %d sent, %d not echoed, reals %v, socket errors %v", sent, lost, reals, errs)
	if len(reals) != 1 {
		t.Errorf("the UDP flow changed real across the kill: %v", reals)
	}
	if lost > 0 {
		t.Errorf("%d of %d datagrams lost across a SIGKILL of vipcastd; want 0 (the data plane does not depend on the daemon)", lost, sent)
	}
}
