package neigh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestPickDefault(t *testing.T) {
	const eth0, eth1 = 2, 3
	names := func(i int) string { return map[int]string{eth0: "eth0", eth1: "eth1"}[i] }
	gw := func(s string) net.IP { return netip.MustParseAddr(s).AsSlice() }
	def := func(link int, via string, metric int) netlink.Route {
		r := netlink.Route{LinkIndex: link, Priority: metric, Type: unix.RTN_UNICAST}
		if via != "" {
			r.Gw = gw(via)
		}
		return r
	}
	_, subnet, _ := net.ParseCIDR("192.0.2.0/24")
	_, zero, _ := net.ParseCIDR("0.0.0.0/0")
	cases := []struct {
		name   string
		routes []netlink.Route
		want   string // next hop and metric, or the error
	}{
		{"none", nil, "no IPv4 default route via eth0"},
		{"one", []netlink.Route{def(eth0, "192.0.2.1", 0)}, "192.0.2.1 metric 0"},
		{"lowest metric wins", []netlink.Route{def(eth0, "192.0.2.1", 100), def(eth0, "192.0.2.3", 10)}, "192.0.2.3 metric 10"},
		{"other interface ignored even with a lower metric", []netlink.Route{def(eth1, "192.0.2.3", 0), def(eth0, "192.0.2.1", 100)}, "192.0.2.1 metric 100"},
		{"only via another interface", []netlink.Route{def(eth1, "192.0.2.3", 0)}, "no IPv4 default route via eth0 (default route uses eth1)"},
		{"not a default route", []netlink.Route{{LinkIndex: eth0, Dst: subnet, Gw: gw("192.0.2.1"), Type: unix.RTN_UNICAST}}, "no IPv4 default route via eth0"},
		{"explicit 0.0.0.0/0", []netlink.Route{{LinkIndex: eth0, Dst: zero, Gw: gw("192.0.2.1"), Type: unix.RTN_UNICAST}}, "192.0.2.1 metric 0"},
		{"blackhole ignored", []netlink.Route{{Type: unix.RTN_BLACKHOLE}, def(eth0, "192.0.2.1", 5)}, "192.0.2.1 metric 5"},
		{"device route", []netlink.Route{def(eth0, "", 0)}, "IPv4 default route via eth0 has no gateway address (a device route); set the gateway MAC explicitly"},
		{"multipath leg on eth0", []netlink.Route{{Type: unix.RTN_UNICAST, Priority: 7, MultiPath: []*netlink.NexthopInfo{
			{LinkIndex: eth1, Gw: gw("198.51.100.1")}, {LinkIndex: eth0, Gw: gw("192.0.2.1")},
		}}}, "192.0.2.1 metric 7"},
		{"IPv4 via an IPv6 neighbour", []netlink.Route{{LinkIndex: eth0, Type: unix.RTN_UNICAST, Via: &netlink.Via{AddrFamily: netlink.FAMILY_V6, Addr: gw("fe80::1")}}}, "fe80::1 metric 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nh, err := pickDefault(tc.routes, IPv4, eth0, "eth0", names)
			got := fmt.Sprintf("%s metric %d", nh.ip, nh.metric)
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrNoRoute) {
					t.Errorf("error %v does not wrap ErrNoRoute", err)
				}
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	v4mac, v6mac := mustMAC("02:00:5e:00:00:04"), mustMAC("02:00:5e:00:00:06")
	v4 := Hop{Family: IPv4, IP: netip.MustParseAddr("192.0.2.1"), MAC: v4mac, Source: SourceARP}
	v6 := Hop{Family: IPv6, IP: netip.MustParseAddr("2001:db8:0:1::1"), MAC: v6mac, Source: SourceTable}
	noV4 := Hop{Family: IPv4, Err: reason(ErrNoRoute, "no IPv4 default route via eth0")}
	noV6 := Hop{Family: IPv6, Err: reason(ErrUnanswered, "NDP for 2001:db8:0:1::1 on eth0 unanswered")}

	if g := choose("eth0", v4, v6); g.MAC.String() != v4mac.String() || g.Family != IPv4 || g.Source != SourceARP || g.IP != v4.IP {
		t.Errorf("both known: %s; want IPv4's", g)
	}
	if g := choose("eth0", noV4, v6); g.MAC.String() != v6mac.String() || g.Family != IPv6 || g.Err != nil {
		t.Errorf("IPv4 unknown: %s; want IPv6's", g)
	}
	if g := choose("eth0", Hop{}, v6); g.Family != IPv6 || !g.Known() {
		t.Errorf("IPv6 only: %s", g)
	}
	g := choose("eth0", noV4, noV6)
	want := "no IPv4 default route via eth0; NDP for 2001:db8:0:1::1 on eth0 unanswered"
	if g.Known() || g.Err == nil || g.Err.Error() != want || !errors.Is(g.Err, ErrNoRoute) || !errors.Is(g.Err, ErrUnanswered) {
		t.Errorf("neither known: %v; want %q matching both reasons", g.Err, want)
	}
	if got := g.String(); got != "eth0: gateway unknown: "+want {
		t.Errorf("String() = %q", got)
	}
	if g := choose("eth0", noV4, Hop{}); g.Err != noV4.Err {
		t.Errorf("IPv4 only, unknown: %v", g.Err)
	}
}

func TestSameDataPlane(t *testing.T) {
	a := Gateway{MAC: mustMAC("02:00:5e:00:00:04"), IP: netip.MustParseAddr("192.0.2.1"), Family: IPv4, Source: SourceTable}
	b := a
	b.Source, b.Since = SourceARP, time.Now()
	b.IPv6 = Hop{Family: IPv6, Err: ErrNoRoute}
	if !a.sameDataPlane(b) {
		t.Error("a change of source or per-family detail counted as a data-plane change")
	}
	b.MAC = mustMAC("02:00:5e:00:00:05")
	if a.sameDataPlane(b) {
		t.Error("a new MAC not counted")
	}
	u1, u2 := Gateway{Err: reason(ErrNoRoute, "no IPv4 default route via eth0")}, Gateway{Err: reason(ErrUnanswered, "ARP for 192.0.2.1 on eth0 unanswered")}
	if u1.sameDataPlane(u2) {
		t.Error("a new reason for an unknown MAC not counted")
	}
}

func TestOptions(t *testing.T) {
	bad := []struct {
		opts Options
		want string
	}{
		{Options{}, "no interface given"},
		{Options{Interface: "a-very-long-interface-name"}, "longer than 15"},
		{Options{Interface: "eth0", Static: mustMAC("01:00:5e:00:00:01")}, "must be a 6-byte unicast"},
		{Options{Interface: "eth0", Static: mustMAC("00:00:00:00:00:00")}, "must be a 6-byte unicast"},
		{Options{Interface: "eth0", Families: 4}, "must be IPv4, IPv6 or Both"},
		{Options{Interface: "eth0", Retry: -time.Second}, "Retry -1s is negative"},
		{Options{Interface: "eth0", ProbeAttempts: -1}, "ProbeAttempts -1 is negative"},
		{Options{Interface: "eth0", NetNSPath: "/nonexistent/netns"}, "open namespace /nonexistent/netns"},
	}
	for _, tc := range bad {
		if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", tc.opts, err, tc.want)
		}
	}
	o := Options{Interface: "eth0", Static: mustMAC("52:54:00:12:35:02")}
	if err := o.normalize(); err != nil {
		t.Fatal(err)
	}
	if o.Families != Both || o.Table != 254 || o.Retry != time.Second || o.MaxRetry != 30*time.Second ||
		o.Refresh != 30*time.Second || o.ProbeAttempts != 3 || o.ProbeTimeout != time.Second || o.Logger == nil {
		t.Errorf("defaults: %+v", o)
	}
}

// 5b. A static MAC is reported as such without any netlink (this test
// needs no privileges).
func TestStatic(t *testing.T) {
	mac := mustMAC("52:54:00:12:35:02")
	r, err := New(Options{Interface: "eth0", Static: mac})
	if err != nil {
		t.Fatal(err)
	}
	mac[0] = 0xee // the Resolver keeps its own copy
	want := "eth0: gateway 52:54:00:12:35:02 (static)"
	if g := r.Current(); g.String() != want || g.Source != SourceStatic || g.Family != 0 || g.IP.IsValid() {
		t.Errorf("Current before Run: %s", g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case g := <-r.Updates():
		if g.String() != want {
			t.Errorf("update %s, want %s", g, want)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no update from a static Resolver")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, ok := <-r.Updates(); ok {
		t.Error("Updates not closed after Run")
	}
	if err := r.Run(context.Background()); err == nil {
		t.Error("a second Run did not fail")
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

func TestCurrentBeforeRun(t *testing.T) {
	r, err := New(Options{Interface: "eth0", Families: IPv6})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if g := r.Current(); g.Known() || !errors.Is(g.Err, ErrNotStarted) || g.IPv6.Family != IPv6 || g.IPv4.Family != 0 {
		t.Errorf("Current before Run: %s (v4 %s, v6 %s)", g, g.IPv4, g.IPv6)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close: %v", err)
	}
}

func TestDumpRetries(t *testing.T) {
	calls := 0
	got, err := dump("routes", func() ([]int, error) {
		calls++
		if calls < 3 {
			return nil, netlink.ErrDumpInterrupted
		}
		return []int{1}, nil
	})
	if err != nil || len(got) != 1 || calls != 3 {
		t.Errorf("interrupted twice: %v, %v after %d calls", got, err, calls)
	}
	calls = 0
	_, err = dump("routes", func() ([]int, error) { calls++; return nil, netlink.ErrDumpInterrupted })
	if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) || calls != dumpAttempts {
		t.Errorf("always interrupted: %v after %d calls", err, calls)
	}
	calls = 0
	_, err = dump("routes", func() ([]int, error) { calls++; return nil, unix.EBUSY })
	if !errors.Is(err, unix.EBUSY) || calls != 1 {
		t.Errorf("other error: %v after %d calls", err, calls)
	}
}

func TestAnswers(t *testing.T) {
	gwMAC, ourMAC := mustMAC("02:00:5e:00:00:01"), mustMAC("02:00:5e:00:00:02")
	gw, us := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	frame := func(op arp.Operation, sha net.HardwareAddr, sip netip.Addr, tha net.HardwareAddr, tip netip.Addr) []byte {
		p, err := arp.NewPacket(op, sha, sip, tha, tip)
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := p.MarshalBinary()
		b, _ := (&ethernet.Frame{Destination: tha, Source: sha, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"reply", frame(arp.OperationReply, gwMAC, gw, ourMAC, us), true},
		{"gratuitous", frame(arp.OperationRequest, gwMAC, gw, ethernet.Broadcast, gw), true},
		{"our own request", frame(arp.OperationRequest, ourMAC, us, ethernet.Broadcast, gw), false},
		{"reply from someone else", frame(arp.OperationReply, ourMAC, us, gwMAC, gw), false},
		{"truncated", frame(arp.OperationReply, gwMAC, gw, ourMAC, us)[:20], false},
	} {
		mac, ok := arpAnswer(tc.b, gw)
		if ok != tc.ok || (ok && mac.String() != gwMAC.String()) {
			t.Errorf("ARP %s: %s, %v", tc.name, mac, ok)
		}
	}

	gw6 := netip.MustParseAddr("2001:db8:0:1::1")
	na := func(target netip.Addr, opts ...ndp.Option) []byte {
		b, err := ndp.MarshalMessage(&ndp.NeighborAdvertisement{Solicited: true, TargetAddress: target, Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tlla := &ndp.LinkLayerAddress{Direction: ndp.Target, Addr: gwMAC}
	if mac, ok := ndpAnswer(na(gw6, tlla), gw6); !ok || mac.String() != gwMAC.String() {
		t.Errorf("NDP answer: %s, %v", mac, ok)
	}
	if _, ok := ndpAnswer(na(gw6), gw6); ok {
		t.Error("NA without target link-layer address accepted")
	}
	if _, ok := ndpAnswer(na(netip.MustParseAddr("2001:db8:0:1::3"), tlla), gw6); ok {
		t.Error("NA for another target accepted")
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: time.Second, max: 5 * time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.next())
	}
	if fmt.Sprint(got) != "[1s 2s 4s 5s 5s]" {
		t.Errorf("backoff %v", got)
	}
	b.reset()
	if d := b.next(); d != time.Second {
		t.Errorf("after reset %s", d)
	}
}

func TestStateName(t *testing.T) {
	for state, want := range map[int]string{
		netlink.NUD_NONE: "none", netlink.NUD_REACHABLE: "reachable", netlink.NUD_STALE: "stale",
		netlink.NUD_PERMANENT: "permanent", netlink.NUD_FAILED: "failed", netlink.NUD_INCOMPLETE: "incomplete",
	} {
		if got := stateName(state); got != want {
			t.Errorf("stateName(%#x) = %q, want %q", state, got, want)
		}
	}
	if Family(0).String() != "none" || Both.String() != "ipv4+ipv6" || IPv6.String() != "ipv6" {
		t.Error("Family.String")
	}
}
