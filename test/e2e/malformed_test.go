package e2e

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"vipcast/api"
	"vipcast/test/lab"
)

// frames builds Ethernet frames from the client to an LB.
type frames struct{ dst, src net.HardwareAddr }

func (f frames) eth(etherType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], f.dst)
	copy(b[6:12], f.src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return append(b, payload...)
}

// ipv4 is a 20-byte header (plus options) client → dst with a payload;
// the caller breaks it afterwards.
func ipv4(src, dst netip.Addr, proto byte, options, payload []byte) []byte {
	ihl := 5 + len(options)/4
	h := make([]byte, ihl*4, ihl*4+len(payload))
	h[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(h[2:4], uint16(len(h)+len(payload)))
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	copy(h[20:], options)
	return append(h, payload...)
}

func ipv6(src, dst netip.Addr, next byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	return append(h, payload...)
}

// tcpSYN is a 20-byte TCP header to port 80.
func tcpSYN(sport uint16) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:2], sport)
	binary.BigEndian.PutUint16(t[2:4], lab.HTTPPort)
	t[12] = 5 << 4
	t[13] = 0x02
	return t
}

// Scenario 11: a burst of malformed frames at the LB's interface, then a
// burst of random garbage. Every kind lands in the counter the data plane
// keeps for it; nothing aborts; vipcastd, its checks and BGP stay healthy
// and the VIPs keep forwarding.
func TestMalformedFrameBurst(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	f := frames{dst: lb1.MAC(), src: lab.ClientMAC()}
	c4, c6, v4, v6 := lab.ClientV4, lab.ClientV6, lab.VIP4, lab.VIP6
	const (
		tcp   = 6
		hbh   = 0  // IPv6 hop-by-hop options
		frag6 = 44 // IPv6 fragment header
	)

	type kind struct {
		name    string
		frame   []byte
		counter string // the GlobalStats counter it must land in
	}
	withFlags := func(b []byte, fragOff uint16) []byte {
		binary.BigEndian.PutUint16(b[6:8], fragOff)
		return b
	}
	tooLong4 := ipv4(c4, v4, tcp, nil, tcpSYN(40001))
	binary.BigEndian.PutUint16(tooLong4[2:4], 1400) // says 1400 bytes, has 40
	shortTCP := ipv4(c4, v4, tcp, nil, []byte{0x9c, 0x42, 0, 80})
	badVersion := ipv4(c4, v4, tcp, nil, tcpSYN(40002))
	badVersion[0] = 0x55
	badIHL := ipv4(c4, v4, tcp, nil, tcpSYN(40003))
	badIHL[0] = 0x43
	tooLong6 := ipv6(c6, v6, tcp, tcpSYN(40004))
	binary.BigEndian.PutUint16(tooLong6[4:6], 1400)
	kinds := []kind{
		{"IPv4 header cut at 10 bytes", f.eth(0x0800, ipv4(c4, v4, tcp, nil, nil)[:10]), "pass_malformed"},
		{"IPv4 version 5", f.eth(0x0800, badVersion), "pass_malformed"},
		{"IPv4 IHL 3", f.eth(0x0800, badIHL), "pass_malformed"},
		{"IPv6 header cut at 30 bytes", f.eth(0x86dd, ipv6(c6, v6, tcp, nil)[:30]), "pass_malformed"},
		{"IPv4 fragment to the VIP", f.eth(0x0800, withFlags(ipv4(c4, v4, tcp, nil, tcpSYN(40005)), 0x2000)), "drop_fragment"},
		{"IPv4 later fragment to the VIP", f.eth(0x0800, withFlags(ipv4(c4, v4, tcp, nil, tcpSYN(40006)), 0x0010)), "drop_fragment"},
		{"IPv6 fragment header to the VIP", f.eth(0x86dd, ipv6(c6, v6, frag6, append([]byte{tcp, 0, 0, 1, 0, 0, 0, 1}, tcpSYN(40007)...))), "drop_fragment"},
		{"IPv4 options to the VIP", f.eth(0x0800, ipv4(c4, v4, tcp, []byte{1, 1, 1, 0}, tcpSYN(40008))), "drop_ip_options"},
		{"IPv6 hop-by-hop header to the VIP", f.eth(0x86dd, ipv6(c6, v6, hbh, append([]byte{tcp, 0, 1, 4, 0, 0, 0, 0}, tcpSYN(40009)...))), "drop_ip_options"},
		{"IPv4 total length past the frame", f.eth(0x0800, tooLong4), "drop_malformed"},
		{"TCP header cut at 4 bytes", f.eth(0x0800, shortTCP), "drop_malformed"},
		{"IPv6 payload length past the frame", f.eth(0x86dd, tooLong6), "drop_malformed"},
	}
	const perKind = 500
	want := map[string]uint64{}
	var burst [][]byte
	for i := 0; i < perKind; i++ {
		for _, k := range kinds {
			burst = append(burst, k.frame)
			if i == 0 {
				want[k.counter] += perKind
			}
		}
	}
	// Garbage: random bytes behind IPv4, IPv6 and random EtherTypes, some
	// of it aimed at the VIPs' addresses.
	rng := rand.New(rand.NewPCG(1, 2))
	const garbage = 5000
	for i := 0; i < garbage; i++ {
		body := make([]byte, 1+rng.IntN(200))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		types := []uint16{0x0800, 0x86dd, uint16(rng.Uint32())}
		et := types[i%3]
		if i%5 == 0 && len(body) >= 40 {
			if et == 0x0800 {
				body[0] = 0x45
				d := v4.As4()
				copy(body[16:20], d[:])
			} else if et == 0x86dd {
				body[0] = 0x60
				d := v6.As16()
				copy(body[24:40], d[:])
			}
		}
		burst = append(burst, f.eth(et, body))
	}

	before := stats(t, lb1).GetGlobal()
	dropsBefore, _ := lb1.IngressDrops()
	start := time.Now()
	// Paced, so the veth rings take every frame and the counts are exact.
	if err := lab.SendFrames(l.Client, "eth0", burst, 50, 500*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	sendTime := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	after := stats(t, lb1).GetGlobal()
	dropsAfter, _ := lb1.IngressDrops()
	lostOnWay := dropsAfter - dropsBefore

	got := map[string]uint64{
		"pass_malformed":  after.GetPassMalformed() - before.GetPassMalformed(),
		"drop_fragment":   after.GetDropFragment() - before.GetDropFragment(),
		"drop_ip_options": after.GetDropIpOptions() - before.GetDropIpOptions(),
		"drop_malformed":  after.GetDropMalformed() - before.GetDropMalformed(),
	}
	t.Logf("%d malformed frames (%d kinds × %d) and %d random ones sent in %s; %d lost before the LB; counter increases: %v (expected at least %v); xdp_aborted +%d, xdp_drop +%d",
		len(kinds)*perKind, len(kinds), perKind, garbage, sendTime.Round(time.Millisecond), lostOnWay, got, want,
		after.GetXdpAborted()-before.GetXdpAborted(), after.GetXdpDrop()-before.GetXdpDrop())
	for name, w := range want {
		// Random frames may land in these counters too, never below.
		if got[name]+lostOnWay < w {
			t.Errorf("%s rose by %d, want at least %d", name, got[name], w)
		}
	}
	if d := after.GetXdpAborted() - before.GetXdpAborted(); d != 0 {
		t.Errorf("xdp_aborted rose by %d, want 0", d)
	}

	// Still healthy: the daemon answers, its checks pass, BGP is up, and
	// the VIPs forward.
	if !lb1.Running() {
		t.Fatalf("vipcastd exited during the burst:\n%s", lb1.Process().Tail(20))
	}
	ctx := bounded(t, 15*time.Second)
	if err := lb1.WaitRouted(ctx, lab.DefaultVIPs(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ns, err := lb1.API().ListNeighbors(ctx, &api.ListNeighborsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.GetNeighbors() {
		if n.GetState() != "established" {
			t.Errorf("BGP neighbor %s is %s after the burst", n.GetAddress(), n.GetState())
		}
	}
	for _, vip := range []netip.Addr{lab.VIP4, lab.VIP6} {
		got, errs := lab.Spread(context.Background(), l.Client, ap(vip, lab.HTTPPort), 20, 4, 0, lab.DialOptions{})
		if len(errs) > 0 {
			t.Errorf("%s after the burst: %s, errors %v", vip, got, errs)
		} else {
			t.Logf("%s after the burst: 20 requests answered by %s", vip, got)
		}
	}
}
