package bgp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// The unprivileged tier: vipcast's speaker and a plain GoBGP server (the
// "router") peer over 127.0.0.1 in the host namespace. Only loopback
// traffic; no root needed.

// freePort finds a loopback TCP port that is free right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upstream is a GoBGP server standing in for a router: it listens on
// 127.0.0.1:port and accepts everything from the peer 127.0.0.1.
type upstream struct {
	srv  *server.BgpServer
	port int
}

func newUpstream(t *testing.T, asn uint32, originate ...string) *upstream {
	t.Helper()
	port := freePort(t)
	srv := server.NewBgpServer(server.LoggerOption(newSlogAdapter(slog.New(slog.DiscardHandler), nil)))
	go srv.Serve()
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: "192.0.2.1", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65000},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: familyV4, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: familyV6, Enabled: true}},
		},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range originate {
		path, err := buildPath(asn, netip.MustParsePrefix(p), netip.MustParseAddr("127.0.0.1"), Attrs{}, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.AddPath(ctx, &api.AddPathRequest{Path: path}); err != nil {
			t.Fatal(err)
		}
	}
	return &upstream{srv: srv, port: port}
}

// ribRoute is a route as a peer's RIB holds it, reduced to what we assert on.
type ribRoute struct {
	nextHop     string
	asPath      []uint32
	communities []uint32
	large       []string
	med, lp     *uint32
}

func listRIB(t *testing.T, srv *server.BgpServer, fam *api.Family) map[string]ribRoute {
	t.Helper()
	out := map[string]ribRoute{}
	err := srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
		for _, p := range d.Paths {
			if !p.Best {
				continue
			}
			attrs, err := apiutil.GetNativePathAttributes(p)
			if err != nil {
				t.Errorf("attributes of %s: %v", d.Prefix, err)
				return
			}
			var r ribRoute
			for _, a := range attrs {
				switch a := a.(type) {
				case *gobgp.PathAttributeNextHop:
					r.nextHop = a.Value.String()
				case *gobgp.PathAttributeMpReachNLRI:
					r.nextHop = a.Nexthop.String()
				case *gobgp.PathAttributeAsPath:
					for _, seg := range a.Value {
						r.asPath = append(r.asPath, seg.(*gobgp.As4PathParam).AS...)
					}
				case *gobgp.PathAttributeCommunities:
					r.communities = a.Value
				case *gobgp.PathAttributeLargeCommunities:
					for _, v := range a.Values {
						r.large = append(r.large, v.String())
					}
				case *gobgp.PathAttributeMultiExitDisc:
					v := a.Value
					r.med = &v
				case *gobgp.PathAttributeLocalPref:
					v := a.Value
					r.lp = &v
				}
			}
			out[d.Prefix] = r
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls cond every 5 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func loopbackConfig(t *testing.T, port int, peerASN uint32) Config {
	return Config{
		ASN:       65000,
		RouterID:  netip.MustParseAddr("192.0.2.2"),
		APIListen: "unix://" + filepath.Join(t.TempDir(), "gobgp.sock"),
		Peers: []Peer{{
			Address: netip.MustParseAddr("127.0.0.1"), ASN: peerASN, Port: uint16(port),
			Families: []string{FamilyIPv4, FamilyIPv6}, Description: "loopback router",
		}},
		NextHopV6:   netip.MustParseAddr("2001:db8:0:1::2"),
		Communities: []string{"65000:100"},
	}
}

// syncBuffer is a log sink tests can read while the speaker writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startSpeaker(t *testing.T, cfg Config, logs *syncBuffer) *Speaker {
	t.Helper()
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

func TestLoopbackAnnounceAttributes(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name    string
		peerASN uint32 // 65000 = iBGP
		prefix  string
		attrs   Attrs
		want    ribRoute
	}{
		{"ebgp v4 defaults", 65001, "203.0.113.1/32", Attrs{},
			ribRoute{nextHop: "127.0.0.1", asPath: []uint32{65000}, communities: []uint32{65000<<16 | 100}}},
		{"ebgp v4 overrides", 65001, "203.0.113.2/32",
			Attrs{Communities: []string{"65000:200", "no-export"}, LargeCommunities: []string{"65000:1:2"}, MED: u32(50), LocalPref: u32(300)},
			ribRoute{nextHop: "127.0.0.1", asPath: []uint32{65000}, communities: []uint32{65000<<16 | 200, 0xffffff01}, large: []string{"65000:1:2"}, med: u32(50)}},
		{"ebgp v4 no communities and prepend", 65001, "203.0.113.3/32", Attrs{Communities: []string{}, Prepend: 2},
			ribRoute{nextHop: "127.0.0.1", asPath: []uint32{65000, 65000, 65000}}},
		{"ebgp v6 configured next hop", 65001, "2001:db8:f00::1/128", Attrs{MED: u32(7)},
			ribRoute{nextHop: "2001:db8:0:1::2", asPath: []uint32{65000}, communities: []uint32{65000<<16 | 100}, med: u32(7)}},
		{"ibgp local pref", 65000, "203.0.113.4/32", Attrs{LocalPref: u32(300)},
			ribRoute{nextHop: "127.0.0.1", communities: []uint32{65000<<16 | 100}, lp: u32(300)}},
		{"ibgp default local pref", 65000, "203.0.113.5/32", Attrs{},
			ribRoute{nextHop: "127.0.0.1", communities: []uint32{65000<<16 | 100}, lp: u32(100)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, tc.peerASN)
			cfg := loopbackConfig(t, up.port, tc.peerASN)
			s := startSpeaker(t, cfg, nil)
			prefix := netip.MustParsePrefix(tc.prefix)
			if err := s.Announce(prefix, tc.attrs); err != nil {
				t.Fatal(err)
			}
			fam := apiFamily(prefix)
			var got ribRoute
			eventually(t, 15*time.Second, "route at upstream", func() bool {
				var ok bool
				got, ok = listRIB(t, up.srv, fam)[tc.prefix]
				return ok
			})
			if dump(got) != dump(tc.want) {
				t.Fatalf("upstream sees %s as\n %s\nwant\n %s", tc.prefix, dump(got), dump(tc.want))
			}
		})
	}
}

func dump(r ribRoute) string {
	p := func(v *uint32) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("nh=%s aspath=%v comm=%v large=%v med=%s lp=%s", r.nextHop, r.asPath, r.communities, r.large, p(r.med), p(r.lp))
}

// upstreamEvents records, in order, what the upstream's best-path table
// and peer state did, as "best <prefix>", "gone <prefix>", "peer <state>".
func upstreamEvents(t *testing.T, srv *server.BgpServer) func() []string {
	var mu sync.Mutex
	var evs []string
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := srv.WatchEvent(ctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}}},
	}, func(r *api.WatchEventResponse) {
		mu.Lock()
		defer mu.Unlock()
		if p := r.GetPeer(); p != nil && p.Type == api.WatchEventResponse_PeerEvent_STATE {
			evs = append(evs, "peer "+sessionState(p.Peer.State.SessionState))
		}
		for _, p := range r.GetTable().GetPaths() {
			nlri, err := apiutil.GetNativeNlri(p)
			if err != nil {
				continue
			}
			if p.IsWithdraw {
				evs = append(evs, "gone "+nlri.String())
			} else {
				evs = append(evs, "best "+nlri.String())
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(evs)
	}
}

func indexOf(evs []string, prefix string) int {
	for i, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return i
		}
	}
	return -1
}

func TestLoopbackLifecycle(t *testing.T) {
	up := newUpstream(t, 65001, "198.51.100.0/24", "2001:db8:beef::/48")
	events := upstreamEvents(t, up.srv)
	var logs syncBuffer
	s := startSpeaker(t, loopbackConfig(t, up.port, 65001), &logs)
	watch := s.Watch(t.Context())

	// The session comes up and the watcher says so.
	deadline := time.After(15 * time.Second)
	for established := false; !established; {
		select {
		case ev := <-watch:
			if ev.Address.String() != "127.0.0.1" || ev.ASN != 65001 || ev.Description != "loopback router" {
				t.Fatalf("event for the wrong peer: %+v", ev)
			}
			established = ev.State == "established"
		case <-deadline:
			t.Fatalf("no established event; peers %+v", s.Peers())
		}
	}

	v4, v6 := netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("2001:db8:f00::1/128")
	for _, p := range []netip.Prefix{v4, v6} {
		if err := s.Announce(p, Attrs{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "both VIPs at upstream", func() bool {
		_, ok4 := listRIB(t, up.srv, familyV4)[v4.String()]
		_, ok6 := listRIB(t, up.srv, familyV6)[v6.String()]
		return ok4 && ok6
	})

	// The upstream's routes reached our Adj-RIB-In but not our RIB.
	var st PeerStatus
	eventually(t, 5*time.Second, "peer counters", func() bool {
		st = s.Peers()[0]
		return st.PrefixesReceived == 2 && st.PrefixesSent == 2
	})
	if st.State != "established" || st.Uptime < 0 {
		t.Fatalf("peer status %+v: want established", st)
	}
	ours := listRIB(t, s.srv, familyV4)
	for k, v := range listRIB(t, s.srv, familyV6) {
		ours[k] = v
	}
	if len(ours) != 2 || ours["198.51.100.0/24"].nextHop != "" || ours["2001:db8:beef::/48"].nextHop != "" {
		t.Fatalf("our RIB should hold only our two VIPs, has %v", ours)
	}

	// Announcing the same thing again sends nothing.
	sent := sentUpdates(t, s)
	if err := s.Announce(v4, Attrs{Communities: []string{"65000:100"}}); err != nil { // same as the default
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := sentUpdates(t, s); got != sent {
		t.Fatalf("re-announcing identical attributes sent %d UPDATEs", got-sent)
	}
	if got := s.Announced(); len(got) != 2 || got[0].Prefix != v4 || got[1].Prefix != v6 || !slices.Equal(got[0].Attrs.Communities, []string{"65000:100"}) {
		t.Fatalf("Announced() = %+v", got)
	}

	// Withdraw, twice.
	if err := s.Withdraw(v6); err != nil {
		t.Fatal(err)
	}
	if err := s.Withdraw(v6); err != nil {
		t.Fatalf("second withdraw: %v", err)
	}
	eventually(t, 5*time.Second, "v6 VIP gone at upstream", func() bool {
		_, ok := listRIB(t, up.srv, familyV6)[v6.String()]
		return !ok
	})
	if got := s.Announced(); len(got) != 1 || got[0].Prefix != v4 {
		t.Fatalf("Announced() after withdraw = %+v", got)
	}

	// Stop: the upstream sees the withdrawal while the session is still up.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Announce(v4, Attrs{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Announce after Stop = %v, want ErrStopped", err)
	}
	var evs []string
	eventually(t, 5*time.Second, "upstream sees the session go down", func() bool {
		evs = events()
		return indexOf(evs, "peer idle") > indexOf(evs, "peer established")
	})
	gone, down := lastIndex(evs, "gone "+v4.String()), lastIndex(evs, "peer idle")
	if gone < 0 || gone > down {
		t.Fatalf("upstream events %v: want %s withdrawn before the session went down", evs, v4)
	}
	for range watch { // drains, then closes because the speaker stopped
	}
	if !strings.Contains(logs.String(), "component=bgp") || !strings.Contains(logs.String(), `msg="vip withdrawn" component=bgp prefix=2001:db8:f00::1/128`) {
		t.Fatalf("logs lack component=bgp lines:\n%s", logs.String())
	}
	t.Logf("upstream events: %v", evs)
}

func lastIndex(evs []string, e string) int {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i] == e {
			return i
		}
	}
	return -1
}

func sentUpdates(t *testing.T, s *Speaker) uint64 {
	t.Helper()
	var n uint64
	if err := s.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		n += p.GetState().GetMessages().GetSent().GetUpdate()
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStartSurfacesAPIListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := loopbackConfig(t, 1179, 65001)
	cfg.APIListen = busy.Addr().String()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "api_listen "+cfg.APIListen) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start with a busy API port = %v, want the listen error", err)
	}
}

// GoBGP reports a failed API listen only through logger.Fatal, from a
// goroutine; with logrus that is os.Exit(1). The adapter must turn it into
// an error instead, both on Errors() and as Start's result when GoBGP
// loses the race for the port after probeListen.
func TestGoBGPFatalBecomesError(t *testing.T) {
	var logs syncBuffer
	s, err := New(loopbackConfig(t, 1179, 65001), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	fatal := make(chan error, 1)
	s.fatalOut = fatal
	adapter := newSlogAdapter(s.log, s.onFatal)
	cause := errors.New("listen tcp 127.0.0.1:50051: bind: address already in use")
	adapter.Fatal("failed to listen grpc port", map[string]any{"Err": cause})
	adapter.Panic("code logic bug", map[string]any{"Topic": "Peer", "Key": "192.0.2.1"})
	// Still here: neither exited nor panicked.
	for _, ch := range []<-chan error{fatal, s.Errors()} {
		select {
		case e := <-ch:
			if !errors.Is(e, cause) || !strings.Contains(e.Error(), "failed to listen grpc port") {
				t.Fatalf("fatal surfaced as %v", e)
			}
		default:
			t.Fatal("fatal not surfaced")
		}
	}
	if e := <-s.Errors(); !strings.Contains(e.Error(), "code logic bug") {
		t.Fatalf("panic surfaced as %v", e)
	}
	out := logs.String()
	for _, want := range []string{
		`level=ERROR msg="failed to listen grpc port" component=bgp gobgp_fatal=true gobgp_level=fatal err="listen tcp`,
		`level=ERROR msg="code logic bug" component=bgp gobgp_fatal=true gobgp_level=panic key=192.0.2.1 topic=Peer`,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
	// Debug is dropped at the handler's Info level, and GoBGP is told so.
	adapter.Debug("chatty", nil)
	if strings.Contains(logs.String(), "chatty") || adapter.GetLevel() != 4 /* InfoLevel */ {
		t.Fatalf("debug handling: level %d, logs %s", adapter.GetLevel(), logs.String())
	}
}

func TestStartRefusesMD5WithoutKernelSupport(t *testing.T) {
	cfg := loopbackConfig(t, 1179, 65001)
	cfg.Peers[0].Password = "s3cret"
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.md5Probe = func(netip.Addr) error { return errors.New("setsockopt TCP_MD5SIG: protocol not available") }
	err = s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "peer 127.0.0.1: MD5 password needs kernel TCP-MD5 support (CONFIG_TCP_MD5SIG)") {
		t.Fatalf("Start = %v", err)
	}
	// This kernel's answer, for the report.
	t.Logf("kernel TCP-MD5 probe on this machine: %v", probeMD5(netip.MustParseAddr("192.0.2.1")))
}

func TestStaleUnixSocketIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gobgp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves the socket file behind, like a crashed daemon
	cfg := loopbackConfig(t, 1179, 65001)
	cfg.APIListen = "unix://" + path
	startSpeaker(t, cfg, nil)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("API not serving on the replaced socket: %v", err)
	}
	c.Close()

	// A second speaker on the same live socket must fail, not steal it.
	s2, _ := New(cfg, nil)
	if err := s2.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "another process is serving on it") {
		t.Fatalf("second Start = %v", err)
	}
}
