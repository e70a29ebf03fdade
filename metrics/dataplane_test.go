package metrics

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
	"vipcast/lb"
)

// The privileged tier: a real balancer and healthcheck program in the
// kernel, frames pushed through them with BPF_PROG_TEST_RUN, and the
// scraped values compared with what those frames must have counted.

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTx   = 3
)

var (
	clientMAC = testpkt.MAC("01:00:00:00:00:00")
	lbMAC     = testpkt.MAC("02:00:00:00:00:00")
	gwMAC     = testpkt.MAC("00:00:de:ad:be:af")
	payload   = []byte("metrics test pkt")
)

func newBalancer(t testing.TB, cfg lb.Config) *lb.Balancer {
	t.Helper()
	testutil.RequirePrivileged(t)
	b, err := lb.New(cfg)
	if err != nil {
		t.Fatalf("lb.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// runXDP passes one frame through the balancer on CPU 0: the connection
// table is per CPU, and a flow's later packets must meet the table its
// first packet filled.
func runXDP(t testing.TB, prog *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256), Repeat: 1})
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return ret
}

// runTC runs the healthcheck program on a frame with skb->mark set (the
// context is the head of struct __sk_buff: len, pkt_type, mark).
func runTC(t testing.TB, prog *ebpf.Program, frame []byte, mark uint32) {
	t.Helper()
	ctx := make([]byte, 12)
	binary.NativeEndian.PutUint32(ctx[8:], mark)
	if _, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256), Context: ctx, Repeat: 1}); err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
}

func eth(typ uint16, ip []byte) []byte {
	return testpkt.Eth{Dst: lbMAC, Src: clientMAC, Type: typ}.Frame(ip)
}

func tcp4(src netip.AddrPort, dst netip.AddrPort, flags uint8) []byte {
	seg := testpkt.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Flags: flags, Window: 8192}.Segment(src.Addr(), dst.Addr(), payload)
	return testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoTCP, Src: src.Addr(), Dst: dst.Addr()}.Packet(seg)
}

func udp4(src netip.AddrPort, dst netip.AddrPort) []byte {
	d := testpkt.UDP{SrcPort: src.Port(), DstPort: dst.Port()}.Datagram(src.Addr(), dst.Addr(), payload)
	return testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoUDP, Src: src.Addr(), Dst: dst.Addr()}.Packet(d)
}

func tcp6(src netip.AddrPort, dst netip.AddrPort, flags uint8) []byte {
	seg := testpkt.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Flags: flags, Window: 8192}.Segment(src.Addr(), dst.Addr(), payload)
	return testpkt.IPv6{NextHeader: testpkt.ProtoTCP, HopLimit: 64, Src: src.Addr(), Dst: dst.Addr()}.Packet(seg)
}

// samples parses a text exposition into "name{labels}" → value (labels
// as exposed: sorted by name).
func samples(t testing.TB, exposition string) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for line := range strings.Lines(exposition) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

type realKey struct {
	vip  lb.VIPKey
	real netip.Addr
}

func TestDataPlaneCounters(t *testing.T) {
	b := newBalancer(t, lb.Config{ConnTableSize: 4096, FallbackTableSize: 1024, GatewayMAC: gwMAC})
	web, dns, empty, web6 := key(t, "10.200.1.1:80/tcp"), key(t, "10.200.1.1:53/udp"),
		key(t, "10.200.1.9:80/tcp"), key(t, "[fc00:1::1]:80/tcp")
	for _, v := range []struct {
		k     lb.VIPKey
		reals []lb.Real
	}{
		{web, []lb.Real{{Addr: ip("10.0.0.1"), Weight: 1}, {Addr: ip("10.0.0.2"), Weight: 1}, {Addr: ip("10.0.0.9"), Weight: 1, State: lb.Draining}}},
		{dns, []lb.Real{{Addr: ip("10.0.0.3"), Weight: 1}}},
		{empty, nil},
		{web6, []lb.Real{{Addr: ip("fc00::3"), Weight: 1}, {Addr: ip("fc00::4"), Weight: 1, State: lb.Down}}},
	} {
		if err := b.AddVIP(lb.VIP{Key: v.k}); err != nil {
			t.Fatal(err)
		}
		if err := b.SetReals(v.k, v.reals); err != nil {
			t.Fatal(err)
		}
	}
	hc, err := lb.NewHealthcheck(lb.HealthcheckConfig{SourceV4: ip("10.0.13.37"), LocalMAC: lbMAC, GatewayMAC: gwMAC})
	if err != nil {
		t.Fatalf("NewHealthcheck: %v", err)
	}
	t.Cleanup(func() { hc.Close() })
	if err := hc.AddMark(1, ip("10.0.0.1")); err != nil {
		t.Fatal(err)
	}

	wantVIP := map[lb.VIPKey]lb.Counter{}
	wantReal := map[realKey]lb.Counter{}
	forwarded := func(k lb.VIPKey, src, dst netip.AddrPort, proto lb.Proto, ipLen int) {
		real, err := b.RealFor(k, lb.Flow{Src: src, Dst: dst, Proto: proto})
		if err != nil {
			t.Fatal(err)
		}
		c := wantVIP[k]
		wantVIP[k] = lb.Counter{Packets: c.Packets + 1, Bytes: c.Bytes + uint64(ipLen)}
		c = wantReal[realKey{k, real}]
		wantReal[realKey{k, real}] = lb.Counter{Packets: c.Packets + 1, Bytes: c.Bytes + uint64(ipLen)}
	}
	send := func(want uint32, frame []byte) {
		t.Helper()
		if got := runXDP(t, b.Program(), frame); got != want {
			t.Fatalf("action %d, want %d: %s", got, want, testpkt.Describe(frame))
		}
	}

	webDst := netip.AddrPortFrom(web.Addr, 80)
	// 8 TCP connections: a SYN (miss) then two ACKs (hits) each.
	for i := range 8 {
		src := netip.AddrPortFrom(ip(fmt.Sprintf("192.168.1.%d", i+1)), uint16(40000+i))
		for _, flags := range []uint8{testpkt.TCPSyn, testpkt.TCPAck, testpkt.TCPAck} {
			p := tcp4(src, webDst, flags)
			send(xdpTx, eth(testpkt.EtherTypeIPv4, p))
			forwarded(web, src, webDst, lb.TCP, len(p))
		}
	}
	// 3 UDP flows of 2 datagrams: a miss, then a hit.
	dnsDst := netip.AddrPortFrom(dns.Addr, 53)
	for i := range 3 {
		src := netip.AddrPortFrom(ip("192.168.2.1"), uint16(5000+i))
		for range 2 {
			p := udp4(src, dnsDst)
			send(xdpTx, eth(testpkt.EtherTypeIPv4, p))
			forwarded(dns, src, dnsDst, lb.UDP, len(p))
		}
	}
	// IPv6: an ACK without a table entry (state lost), then a hit.
	web6Dst := netip.AddrPortFrom(web6.Addr, 80)
	src6 := netip.AddrPortFrom(ip("fc00:2::1"), 31337)
	for range 2 {
		p := tcp6(src6, web6Dst, testpkt.TCPAck)
		send(xdpTx, eth(testpkt.EtherTypeIPv6, p))
		forwarded(web6, src6, web6Dst, lb.TCP, len(p))
	}
	// A VIP without reals: dropped (after a SYN miss).
	emptyDst := netip.AddrPortFrom(empty.Addr, 80)
	send(xdpDrop, eth(testpkt.EtherTypeIPv4, tcp4(netip.MustParseAddrPort("192.168.3.1:1234"), emptyDst, testpkt.TCPSyn)))
	// Not a VIP: passed, and two echo requests to a VIP: answered.
	send(xdpPass, eth(testpkt.EtherTypeIPv4, tcp4(netip.MustParseAddrPort("192.168.3.1:1234"), netip.MustParseAddrPort("192.0.2.2:80"), testpkt.TCPSyn)))
	echo := testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoICMP, Src: ip("192.168.1.1"), Dst: web.Addr}.
		Packet(testpkt.ICMPv4{Type: testpkt.ICMPEchoRequest, Rest: testpkt.EchoRest(7, 1)}.Message(payload))
	send(xdpTx, eth(testpkt.EtherTypeIPv4, echo))
	send(xdpTx, eth(testpkt.EtherTypeIPv4, echo))
	// Health checks: three marked packets encapsulated, one unmarked.
	hcPkt := eth(testpkt.EtherTypeIPv4, udp4(netip.MustParseAddrPort("10.0.13.37:9000"), netip.AddrPortFrom(web.Addr, 80)))
	for range 3 {
		runTC(t, hc.Program(), hcPkt, 1)
	}
	runTC(t, hc.Program(), hcPkt, 0)

	src := Source{
		DataPlane:    b,
		Healthcheck:  hc,
		GatewayKnown: func() bool { return b.GatewayMAC() != nil },
		BuildVersion: "test",
	}
	got := samples(t, scrape(t, Handler(NewRegistry(NewCollector(src)))))

	want := map[string]float64{
		`vipcast_xdp_actions_total{action="tx"}`:                                   8*3 + 3*2 + 2 + 2,
		`vipcast_xdp_actions_total{action="drop"}`:                                 1,
		`vipcast_xdp_actions_total{action="pass"}`:                                 1,
		`vipcast_xdp_actions_total{action="aborted"}`:                              0,
		`vipcast_conn_table_lookups_total{result="miss_tcp_syn"}`:                  8 + 1,
		`vipcast_conn_table_lookups_total{result="hit"}`:                           8*2 + 3 + 1,
		`vipcast_conn_table_lookups_total{result="miss_udp"}`:                      3,
		`vipcast_conn_table_lookups_total{result="miss_tcp_other"}`:                1,
		`vipcast_conn_table_lookups_total{result="fallback_hit"}`:                  0,
		`vipcast_conn_table_lookups_total{result="repick_down"}`:                   0,
		`vipcast_dropped_packets_total{reason="no_real"}`:                          1,
		`vipcast_dropped_packets_total{reason="no_gateway"}`:                       0,
		`vipcast_icmp_replies_total{type="echo"}`:                                  2,
		`vipcast_icmp_replies_total{type="too_big"}`:                               0,
		`vipcast_icmp_errors_forwarded_total`:                                      0,
		`vipcast_passed_malformed_packets_total`:                                   0,
		`vipcast_healthcheck_encap_packets_total{result="encapsulated"}`:           3,
		`vipcast_healthcheck_encap_packets_total{result="no_mark"}`:                1,
		`vipcast_healthcheck_encap_packets_total{result="error"}`:                  0,
		`vipcast_gateway_mac_known`:                                                1,
		`vipcast_build_info{goversion="` + runtime.Version() + `",version="test"}`: 1,
		`vipcast_vip_packets_total{vip="10.200.1.9:80/tcp"}`:                       0,
		`vipcast_real_up{real="10.0.0.9",vip="10.200.1.1:80/tcp"}`:                 0,
		`vipcast_real_up{real="10.0.0.1",vip="10.200.1.1:80/tcp"}`:                 1,
		`vipcast_real_up{real="fc00::4",vip="[fc00:1::1]:80/tcp"}`:                 0,
		`vipcast_vip_reals{state="up",vip="10.200.1.1:80/tcp"}`:                    2,
		`vipcast_vip_reals{state="draining",vip="10.200.1.1:80/tcp"}`:              1,
		`vipcast_vip_reals{state="down",vip="10.200.1.1:80/tcp"}`:                  0,
		`vipcast_vip_reals{state="down",vip="[fc00:1::1]:80/tcp"}`:                 1,
		`vipcast_vip_reals{state="up",vip="10.200.1.9:80/tcp"}`:                    0,
	}
	for part := range numParts {
		want[`vipcast_scrape_errors_total{part="`+part.String()+`"}`] = 0
	}
	tables, _ := b.ConnTables()
	for _, tb := range tables {
		want[fmt.Sprintf(`vipcast_conn_table_entries_limit{cpu="%d"}`, tb.CPU)] = float64(tb.Entries)
	}
	for k, c := range wantVIP {
		want[fmt.Sprintf(`vipcast_vip_packets_total{vip="%s"}`, k)] = float64(c.Packets)
		want[fmt.Sprintf(`vipcast_vip_bytes_total{vip="%s"}`, k)] = float64(c.Bytes)
	}
	for _, v := range b.VIPs() {
		for _, r := range v.Reals {
			c := wantReal[realKey{v.Key, r.Addr}] // zero for reals that got nothing
			want[fmt.Sprintf(`vipcast_real_packets_total{real="%s",vip="%s"}`, r.Addr, v.Key)] = float64(c.Packets)
			want[fmt.Sprintf(`vipcast_real_bytes_total{real="%s",vip="%s"}`, r.Addr, v.Key)] = float64(c.Bytes)
		}
	}
	if wantReal[realKey{web, ip("10.0.0.1")}].Packets == 0 || wantReal[realKey{web, ip("10.0.0.2")}].Packets == 0 {
		t.Errorf("the web connections all went to one real; the test proves less than it should: %v", wantReal)
	}
	// The batch read agrees with the one-entry-at-a-time reads.
	all, err := b.Counters()
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	if len(all) != len(b.VIPs()) {
		t.Errorf("Counters lists %d VIPs, VIPs %d", len(all), len(b.VIPs()))
	}
	for _, v := range all {
		if c, err := b.VIPStats(v.Key); err != nil || c != v.Counter {
			t.Errorf("vip %s: Counters says %+v, VIPStats %+v (%v)", v.Key, v.Counter, c, err)
		}
		for i, r := range v.Reals {
			if c, err := b.RealStats(v.Key, r.Addr); err != nil || c != v.RealCounters[i] {
				t.Errorf("vip %s real %s: Counters says %+v, RealStats %+v (%v)", v.Key, r.Addr, v.RealCounters[i], c, err)
			}
		}
	}

	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: missing", name)
		case g != w:
			t.Errorf("%s = %v, want %v", name, g, w)
		}
	}
}
