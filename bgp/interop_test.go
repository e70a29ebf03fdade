package bgp

import (
	"encoding/json"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Interop tier: vipcast's speaker (helper process in the LB namespace)
// against BIRD 2 (router namespace), and the stock gobgp CLI against the
// speaker's API.

var (
	vip4 = netip.MustParsePrefix("203.0.113.1/32")
	vip6 = netip.MustParsePrefix("2001:db8:f00::1/128")
)

func waitEstablished(t *testing.T, l *lab, h *helper, protos ...string) {
	t.Helper()
	waitUntil(t, 20*time.Second, "sessions "+strings.Join(protos, ",")+" established", func() bool {
		for _, p := range protos {
			if l.birdProtoState(t, p) != "Established" {
				return false
			}
		}
		return true
	})
}

func durStats(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return "min " + s[0].String() + " median " + s[len(s)/2].String() + " max " + s[len(s)-1].String()
}

func TestBIRDInterop(t *testing.T) {
	l := newLab(t)
	l.startBIRD(t, birdOptions{})
	h := startHelper(t, l.lb)
	cfg := labConfig()
	resp := h.must(helperReq{Op: "start", Config: &cfg})
	t.Logf("Start took %s", resp.Took)
	waitEstablished(t, l, h, "lb4", "lb6")
	waitUntil(t, 5*time.Second, "speaker sees both sessions", func() bool {
		return h.peer(rtrV4).State == "established" && h.peer(rtrV6).State == "established"
	})

	t.Run("import policy rejects the router's routes", func(t *testing.T) {
		var rib helperResp
		// BIRD exports 198.51.100.0/24 and 2001:db8:beef::/48 to us.
		waitUntil(t, 5*time.Second, "BIRD's two routes received", func() bool {
			rib = h.must(helperReq{Op: "rib"})
			return rib.Received == 2
		})
		if len(rib.RIB) != 0 {
			t.Fatalf("our RIB should be empty, holds %v", rib.RIB)
		}
		out := l.birdc(t, "show", "route", "export", "lb4")
		if !strings.Contains(out, "198.51.100.0/24") {
			t.Fatalf("BIRD does not export its route to us, the test proves nothing:\n%s", out)
		}
	})

	t.Run("announce and withdraw latency", func(t *testing.T) {
		for _, vip := range []netip.Prefix{vip4, vip6} {
			var in, out []time.Duration
			for range 5 {
				start := time.Now()
				h.must(helperReq{Op: "announce", Prefix: vip})
				pollBird(t, l.bird, vip.String(), true, 5*time.Second)
				in = append(in, time.Since(start))
				start = time.Now()
				h.must(helperReq{Op: "withdraw", Prefix: vip})
				pollBird(t, l.bird, vip.String(), false, 5*time.Second)
				out = append(out, time.Since(start))
			}
			t.Logf("%s announce -> in BIRD: %s", vip, durStats(in))
			t.Logf("%s withdraw -> gone from BIRD: %s", vip, durStats(out))
			if slices.Max(in) > time.Second || slices.Max(out) > time.Second {
				t.Fatalf("%s: announce/withdraw took over a second (in %v, out %v)", vip, in, out)
			}
		}
	})

	t.Run("routes in BIRD carry next hop and attributes", func(t *testing.T) {
		med := uint32(10)
		h.must(helperReq{Op: "announce", Prefix: vip4})
		h.must(helperReq{Op: "announce", Prefix: vip6, Attrs: Attrs{Communities: []string{"65000:200", "no-export"}, MED: &med}})
		pollBird(t, l.bird, vip4.String(), true, 5*time.Second)
		pollBird(t, l.bird, vip6.String(), true, 5*time.Second)
		tests := []struct {
			prefix string
			want   []string
			not    []string
		}{
			{vip4.String(), []string{
				"via 192.0.2.2 on eth0", "BGP.next_hop: 192.0.2.2", "BGP.as_path: 65000",
				"BGP.community: (65000,100)", "BGP.large_community: (65000, 0, 1)", "[lb4 ",
			}, []string{"BGP.med"}},
			{vip6.String(), []string{
				"via 2001:db8:0:1::2 on eth0", "BGP.next_hop: 2001:db8:0:1::2", "BGP.as_path: 65000",
				"BGP.community: (65000,200) (65535,65281)", "BGP.med: 10", "BGP.large_community: (65000, 0, 1)", "[lb6 ",
			}, []string{"(65000,100)"}},
		}
		for _, tc := range tests {
			out := l.birdc(t, "show", "route", tc.prefix, "all")
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("birdc show route %s all: lacks %q:\n%s", tc.prefix, w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("birdc show route %s all: has %q:\n%s", tc.prefix, n, out)
				}
			}
		}
		routes := h.must(helperReq{Op: "announced"}).Routes
		if len(routes) != 2 || routes[1].Prefix != vip6 || ptrValue(routes[1].Attrs.MED) != uint32(10) ||
			!slices.Equal(routes[0].Attrs.Communities, []string{"65000:100"}) || routes[0].NextHop.IsValid() {
			t.Fatalf("Announced() = %+v", routes)
		}
	})

	t.Run("gobgp CLI against our API", func(t *testing.T) {
		gobgpCLI := func(args ...string) string {
			t.Helper()
			if _, err := exec.LookPath("gobgp"); err != nil {
				t.Skip("gobgp CLI not installed (Debian package gobgpd)")
			}
			out, err := l.lb.Exec("gobgp", args...)
			if err != nil {
				t.Fatal(err)
			}
			return string(out)
		}
		t.Logf("gobgp CLI: %s", strings.TrimSpace(gobgpCLI("--version")))
		for _, args := range [][]string{{"neighbor"}, {"-p", "50051", "neighbor"}} {
			out := gobgpCLI(args...)
			for _, want := range []string{"192.0.2.1", "2001:db8:0:1::1", "65001", "Establ"} {
				if !strings.Contains(out, want) {
					t.Fatalf("gobgp %v lacks %q:\n%s", args, want, out)
				}
			}
		}
		for _, tc := range []struct {
			args   []string
			prefix string
			comm   float64
		}{
			{[]string{"global", "rib", "-j"}, vip4.String(), 65000<<16 | 100},
			{[]string{"global", "rib", "-a", "ipv6", "-j"}, vip6.String(), 65000<<16 | 200},
		} {
			out := gobgpCLI(tc.args...)
			var rib map[string][]struct {
				Attrs []map[string]any `json:"attrs"`
			}
			if err := json.Unmarshal([]byte(out), &rib); err != nil {
				t.Fatalf("gobgp %v: %v\n%s", tc.args, err, out)
			}
			paths, ok := rib[tc.prefix]
			if !ok || len(rib) != 1 || len(paths) != 1 {
				t.Fatalf("gobgp %v: want only %s, got %s", tc.args, tc.prefix, out)
			}
			found := false
			for _, a := range paths[0].Attrs {
				if cs, ok := a["communities"].([]any); ok && len(cs) > 0 && cs[0] == tc.comm {
					found = true
				}
			}
			if !found {
				t.Fatalf("gobgp %v: community %v missing:\n%s", tc.args, tc.comm, out)
			}
		}
		if out := gobgpCLI("neighbor", rtrV4); !strings.Contains(out, "BGP state = ESTABLISHED") {
			t.Fatalf("gobgp neighbor %s:\n%s", rtrV4, out)
		}
	})

	evs := h.must(helperReq{Op: "events"}).Events
	up := map[string]bool{}
	for _, ev := range evs {
		if ev.State == "established" {
			up[ev.Address.String()] = true
		}
	}
	if !up[rtrV4] || !up[rtrV6] {
		t.Fatalf("Watch did not report both sessions established: %+v", evs)
	}
}

// silentListener accepts TCP connections on addr inside ns and never says
// a word: a BGP peer that never comes up although its TCP does, the case
// that would block a naive speaker longest. It counts connections.
func silentListener(t *testing.T, l *lab, addr string) *atomic.Int32 {
	t.Helper()
	var ln net.Listener
	if err := l.rtr.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr) // the socket is created on the thread inside the namespace
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return &n
}

func TestBIRDPeerFailuresMD5AndReconfigure(t *testing.T) {
	l := newLab(t)
	const password = "s3cret-md5"
	l.startBIRD(t, birdOptions{password: password})
	silent := silentListener(t, l, "["+rtrV6+"]:1790")
	h := startHelper(t, l.lb)

	cfg := labConfig()
	cfg.GracefulRestart = true
	cfg.RestartTime = 60 * time.Second
	cfg.Peers[0].Password = password
	cfg.Peers[1].Port = 1790 // the silent listener
	resp := h.must(helperReq{Op: "start", Config: &cfg})
	if took, _ := time.ParseDuration(resp.Took); took > time.Second {
		t.Fatalf("Start took %s with a peer that never comes up", took)
	}
	resp = h.must(helperReq{Op: "announce", Prefix: vip4})
	if took, _ := time.ParseDuration(resp.Took); took > 100*time.Millisecond {
		t.Fatalf("Announce took %s", took)
	}

	t.Run("md5 session comes up, silent peer does not block it", func(t *testing.T) {
		waitEstablished(t, l, h, "lb4")
		pollBird(t, l.bird, vip4.String(), true, 5*time.Second)
		waitUntil(t, 5*time.Second, "speaker dialled the silent peer", func() bool { return silent.Load() > 0 })
		if st := h.peer(rtrV6).State; st == "established" {
			t.Fatalf("silent peer is %s", st)
		}
		out := l.birdc(t, "show", "protocols", "all", "lb4")
		// GoBGP's capabilities as BIRD received them: graceful restart with our restart time.
		neigh := out[strings.Index(out, "Neighbor capabilities"):]
		for _, want := range []string{"Graceful restart", "Restart time: 60", "AF supported: ipv4"} {
			if !strings.Contains(neigh, want) {
				t.Fatalf("BIRD did not get our GR capability (%q):\n%s", want, out)
			}
		}
	})

	t.Run("reconfigure updates a peer", func(t *testing.T) {
		next := cfg
		next.Peers = slices.Clone(cfg.Peers)
		next.Peers[1].Port = 0 // back to 179: BIRD
		h.must(helperReq{Op: "reconfigure", Config: &next})
		waitEstablished(t, l, h, "lb6")
		h.must(helperReq{Op: "announce", Prefix: vip6})
		pollBird(t, l.bird, vip6.String(), true, 5*time.Second)
		if st := l.birdProtoState(t, "lb4"); st != "Established" {
			t.Fatalf("updating the v6 peer disturbed the v4 session: %s", st)
		}
		cfg = next
	})

	t.Run("reconfigure removes a peer", func(t *testing.T) {
		next := cfg
		next.Peers = cfg.Peers[1:]
		h.must(helperReq{Op: "reconfigure", Config: &next})
		pollBird(t, l.bird, vip4.String(), false, 5*time.Second)
		waitUntil(t, 5*time.Second, "BIRD sees lb4 go down", func() bool { return l.birdProtoState(t, "lb4") != "Established" })
		peers := h.must(helperReq{Op: "peers"}).Peers
		if len(peers) != 1 || peers[0].Address.String() != rtrV6 || peers[0].State != "established" {
			t.Fatalf("peers after removal: %+v", peers)
		}
	})

	t.Run("reconfigure adds a peer", func(t *testing.T) {
		h.must(helperReq{Op: "reconfigure", Config: &cfg})
		waitEstablished(t, l, h, "lb4", "lb6")
		pollBird(t, l.bird, vip4.String(), true, 5*time.Second) // still announced, sent to the new session
	})

	t.Run("reconfigure refuses what needs a restart", func(t *testing.T) {
		bad := cfg
		bad.ASN = 65010
		resp := h.call(helperReq{Op: "reconfigure", Config: &bad})
		if !strings.Contains(resp.Err, "asn 65000 -> 65010") || !strings.Contains(resp.Err, "need a restart") {
			t.Fatalf("reconfigure with a new ASN: %q", resp.Err)
		}
		dup := cfg
		dup.Peers = append(slices.Clone(cfg.Peers), cfg.Peers[0])
		resp = h.call(helperReq{Op: "reconfigure", Config: &dup})
		if !strings.Contains(resp.Err, "peers[2] 192.0.2.1: duplicate of peers[0]") {
			t.Fatalf("reconfigure with a duplicate peer: %q", resp.Err)
		}
		if st := l.birdProtoState(t, "lb4"); st != "Established" {
			t.Fatalf("a refused reconfigure touched the sessions: lb4 %s", st)
		}
	})
}

// birdLogIndex is the position of the first log line containing all parts.
func birdLogIndex(log string, parts ...string) int {
	for i, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return i
		}
	}
	return -1
}

func TestBIRDStopWithdrawsFirst(t *testing.T) {
	l := newLab(t)
	l.startBIRD(t, birdOptions{})
	h := startHelper(t, l.lb)
	cfg := labConfig()
	h.must(helperReq{Op: "start", Config: &cfg})
	waitEstablished(t, l, h, "lb4", "lb6")
	h.must(helperReq{Op: "announce", Prefix: vip4})
	h.must(helperReq{Op: "announce", Prefix: vip6})
	pollBird(t, l.bird, vip4.String(), true, 5*time.Second)
	pollBird(t, l.bird, vip6.String(), true, 5*time.Second)

	resp := h.must(helperReq{Op: "stop"})
	t.Logf("Stop took %s", resp.Took)
	waitUntil(t, 5*time.Second, "sessions closed", func() bool {
		return l.birdProtoState(t, "lb4") != "Established" && l.birdProtoState(t, "lb6") != "Established"
	})
	log := l.birdLog(t)
	for _, tc := range []struct{ proto, prefix string }{{"lb4", vip4.String()}, {"lb6", vip6.String()}} {
		removed := birdLogIndex(log, tc.proto+".", "> removed", tc.prefix)
		closed := birdLogIndex(log, tc.proto+": Received: Peer de-configured")
		if removed < 0 || closed < 0 || removed > closed {
			t.Fatalf("BIRD log: want %s withdrawn (line %d) before %s closed (line %d):\n%s", tc.prefix, removed, tc.proto, closed, log)
		}
	}
	if resp := h.call(helperReq{Op: "announce", Prefix: vip4}); !strings.Contains(resp.Err, "stopped") {
		t.Fatalf("announce after stop: %q", resp.Err)
	}
}

func TestBIRDGracefulRestart(t *testing.T) {
	l := newLab(t)
	l.startBIRD(t, birdOptions{})
	cfg := labConfig()
	cfg.GracefulRestart = true
	cfg.RestartTime = 60 * time.Second

	old := startHelper(t, l.lb)
	old.must(helperReq{Op: "start", Config: &cfg})
	waitEstablished(t, l, old, "lb4", "lb6")
	old.must(helperReq{Op: "announce", Prefix: vip4})
	old.must(helperReq{Op: "announce", Prefix: vip6})
	pollBird(t, l.bird, vip4.String(), true, 5*time.Second)
	pollBird(t, l.bird, vip6.String(), true, 5*time.Second)

	// The daemon dies (or restarts) without Stop: no NOTIFICATION, so
	// BIRD keeps our routes as stale.
	old.kill()
	waitUntil(t, 10*time.Second, "BIRD notices the session is gone", func() bool {
		return l.birdProtoState(t, "lb4") != "Established"
	})
	time.Sleep(500 * time.Millisecond)
	for _, vip := range []netip.Prefix{vip4, vip6} {
		if ok, _ := l.bird.hasRoute(vip.String()); !ok {
			t.Fatalf("BIRD dropped %s although graceful restart was negotiated:\n%s", vip, l.birdLog(t))
		}
	}
	for _, proto := range []string{"lb4", "lb6"} {
		if out := l.birdc(t, "show", "protocols", "all", proto); !strings.Contains(out, "Neighbor graceful restart active") {
			t.Fatalf("BIRD is not in graceful restart for %s:\n%s", proto, out)
		}
	}

	// The new process: Restarting, and it announces only the v4 VIP.
	next := cfg
	next.Restarting = true
	h := startHelper(t, l.lb)
	start := time.Now()
	h.must(helperReq{Op: "start", Config: &next})
	h.must(helperReq{Op: "announce", Prefix: vip4})
	waitEstablished(t, l, h, "lb4", "lb6")
	// After End-of-RIB BIRD flushes the stale route we did not renew.
	pollBird(t, l.bird, vip6.String(), false, 15*time.Second)
	t.Logf("restart: stale v6 route flushed %s after the new speaker started", time.Since(start))
	if ok, _ := l.bird.hasRoute(vip4.String()); !ok {
		t.Fatal("the re-announced v4 VIP is missing after the restart")
	}
	out := l.birdc(t, "show", "route", vip4.String(), "all")
	if !strings.Contains(out, "BGP.next_hop: 192.0.2.2") || strings.Contains(out, "stale") {
		t.Fatalf("v4 VIP after restart:\n%s", out)
	}
}
