package e2e

import (
	"strings"
	"testing"
	"time"

	"vipcast/test/lab"
)

// ecmpVIP is the VIP both LBs announce.
var ecmpVIP = lab.VIPCfg{Addr: lab.VIP4ECMP, Port: lab.HTTPPort, Proto: "tcp", Reals: lab.Reals4()}

// startLB2 runs vipcastd on LB2 with cfg and stops and cleans it up when
// the test ends, so the next scenario finds LB2's interface bare.
func startLB2(t *testing.T, l *lab.Lab, cfg lab.DaemonConfig) *lab.LB {
	t.Helper()
	lb2 := l.LBs[1]
	if err := lb2.WriteConfig(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lb2.Stop(); err != nil {
			t.Error(err)
		}
		if err := lb2.Cleanup(); err != nil {
			t.Errorf("vipcastd --cleanup on %s: %v", lb2.Name, err)
		}
	})
	if err := lb2.Start(); err != nil {
		t.Fatal(err)
	}
	return lb2
}

// Scenario 6: two LBs announce the same VIP and BIRD spreads flows over
// them (ECMP). Rings are deterministic: a flow lands on the same real
// whichever LB gets it. When one LB stops, its flows move to the other,
// which has never seen them, and they keep their real.
func TestTwoLBsECMP(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	cfg := lab.DefaultConfig()
	cfg.VIPs = append(cfg.VIPs, ecmpVIP)
	if _, err := lb1.Apply(bounded(t, 10*time.Second), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = lb1.Apply(bounded(t, 10*time.Second), lab.DefaultConfig()) })
	lb2 := startLB2(t, l, lab.DaemonConfig{GracefulRestart: false, VIPs: []lab.VIPCfg{ecmpVIP}})
	prefix := prefixOf(lab.VIP4ECMP)
	took := waitFor(t, 20*time.Second, 5*time.Millisecond, "both LBs' paths in BIRD", func() (bool, string) {
		n, err := l.Bird.RouteCount(prefix)
		return err == nil && n == 2, "paths " + itoa(n)
	})
	// LB2 announces with its first healthy real; rings agree once both
	// LBs have every real up.
	for _, x := range l.LBs {
		if err := x.WaitRouted(bounded(t, 10*time.Second), []lab.VIPCfg{ecmpVIP}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	out, err := l.Router.Exec("ip", "route", "show", lab.VIP4ECMP.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LB2 started: BIRD has both paths to %s after %s; the router's kernel route:\n%s", prefix, took.Round(time.Millisecond), strings.TrimSpace(string(out)))
	for _, x := range l.LBs {
		if !strings.Contains(string(out), "nexthop via "+x.V4.String()) {
			t.Errorf("the router's route to %s has no next hop %s (no ECMP)", lab.VIP4ECMP, x.V4)
		}
	}

	t.Run("same flow, same real, either LB", func(t *testing.T) {
		// The client steers a connection to one LB by its socket mark,
		// so the very same flow (same source port) can go through each.
		for mark, x := range map[int]*lab.LB{1: lb1, 2: lb2} {
			table := 100 + mark
			mustExec(t, l.Client, "ip", "route", "add", lab.VIP4ECMP.String()+"/32", "via", x.V4.String(), "table", itoa(table))
			mustExec(t, l.Client, "ip", "rule", "add", "fwmark", itoa(mark), "table", itoa(table))
			t.Cleanup(func() {
				_, _ = l.Client.Exec("ip", "rule", "del", "fwmark", itoa(mark), "table", itoa(table))
				_, _ = l.Client.Exec("ip", "route", "flush", "table", itoa(table))
			})
		}
		const flows = 60
		before1, before2 := vipPackets(stats(t, lb1), ecmpVIP), vipPackets(stats(t, lb2), ecmpVIP)
		via := map[int][]string{}
		for _, mark := range []int{1, 2} {
			for i := 0; i < flows; i++ {
				rep, err := lab.Get(l.Client, ap(lab.VIP4ECMP, lab.HTTPPort), "/", lab.DialOptions{SrcPort: uint16(31000 + i), Mark: uint32(mark)})
				if err != nil {
					t.Fatalf("flow from port %d via LB%d: %v", 31000+i, mark, err)
				}
				via[mark] = append(via[mark], rep.Real)
			}
		}
		d1, d2 := vipPackets(stats(t, lb1), ecmpVIP)-before1, vipPackets(stats(t, lb2), ecmpVIP)-before2
		same, spread := 0, lab.Reals{}
		for i := 0; i < flows; i++ {
			spread[via[1][i]]++
			if via[1][i] == via[2][i] {
				same++
			} else if i-same < 5 {
				t.Errorf("flow from port %d: %s via LB1, %s via LB2", 31000+i, via[1][i], via[2][i])
			}
		}
		t.Logf("%d flows, each once through LB1 (%d packets) and once through LB2 (%d packets): %d of %d landed on the same real both times; reals %s", flows, d1, d2, same, flows, spread)
		if same != flows {
			t.Errorf("%d of %d flows changed real with the LB", flows-same, flows)
		}
		if d1 < 3*flows || d2 < 3*flows {
			t.Errorf("the LBs forwarded %d and %d packets of the %d flows each, want >= %d: the marks did not steer", d1, d2, flows, 3*flows)
		}
	})

	t.Run("one LB stops, flows keep their real", func(t *testing.T) {
		const n = 40
		var conns []*lab.HTTPConn
		first := make([]string, n)
		before2 := vipPackets(stats(t, lb2), ecmpVIP)
		for i := 0; i < n; i++ {
			c, err := lab.DialHTTP(l.Client, ap(lab.VIP4ECMP, lab.HTTPPort), lab.DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rep, err := c.Get("/", false, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns, first[i] = append(conns, c), rep.Real
		}
		viaLB2 := vipPackets(stats(t, lb2), ecmpVIP) - before2
		missBefore := stats(t, lb1).GetGlobal().GetConnMissTcpOther()
		t0 := time.Now()
		if err := lb2.Stop(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Bird.WaitRoute(prefix, true, time.Second); err != nil {
			t.Fatal(err)
		}
		gone := waitFor(t, 10*time.Second, time.Millisecond, "LB2's path out of BIRD", func() (bool, string) {
			c, err := l.Bird.RouteCount(prefix)
			return err == nil && c == 1, "paths " + itoa(c)
		})
		stopped := time.Since(t0)
		kept, failed := 0, 0
		for i, c := range conns {
			rep, err := c.Get("/", false, 2*time.Second)
			switch {
			case err != nil:
				failed++
				if failed <= 3 {
					t.Errorf("connection %d (%s, first answered by %s) after LB2 stopped: %v", i, c.LocalAddr(), first[i], err)
				}
			case rep.Real == first[i]:
				kept++
			default:
				t.Errorf("connection %d moved from %s to %s", i, first[i], rep.Real)
			}
		}
		moved := stats(t, lb1).GetGlobal().GetConnMissTcpOther() - missBefore
		t.Logf("%d kept-alive connections (LB2 had forwarded %d of their packets); LB2 stopped: its path left BIRD %s after SIGTERM (%s after vipcastd exited); then %d of %d connections answered by the same real, %d failed; LB1 placed %d established-flow packets it had never seen (conn_miss_tcp_other)",
			n, viaLB2, stopped.Round(time.Millisecond), gone.Round(time.Millisecond), kept, n, failed, moved)
		if viaLB2 == 0 {
			t.Errorf("no connection went through LB2 before it stopped: ECMP did not spread (%d connections)", n)
		}
		if kept != n {
			t.Errorf("%d of %d connections kept their real across the loss of LB2", kept, n)
		}
		if viaLB2 > 0 && moved == 0 {
			t.Errorf("LB1 saw no established flow it had not placed itself: did LB2's flows move to it?")
		}
	})
}
