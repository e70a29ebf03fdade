package lb

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
)

// The packet tests feed frames through the balancer with BPF_PROG_TEST_RUN
// (repeat = 1: a second run would see the rewritten frame) and compare the
// whole output frame with one built independently by package testpkt.

const (
	xdpAborted = 0
	xdpDrop    = 1
	xdpPass    = 2
	xdpTx      = 3
)

var (
	clientMAC = testpkt.MAC("01:00:00:00:00:00")
	lbMAC     = testpkt.MAC("02:00:00:00:00:00")
	gwMAC     = testpkt.MAC("00:00:de:ad:be:af")
	payload   = []byte("katran test pkt")
	addr      = testpkt.Addr
)

// newTestBalancer loads a balancer with small tables and the gateway set.
func newTestBalancer(t *testing.T, cfg Config) *Balancer {
	t.Helper()
	testutil.RequirePrivileged(t)
	if cfg.GatewayMAC == nil {
		cfg.GatewayMAC = gwMAC
	}
	if cfg.ConnTableSize == 0 {
		cfg.ConnTableSize = 4096
	}
	if cfg.FallbackTableSize == 0 {
		cfg.FallbackTableSize = 1024
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func mustVIP(t *testing.T, b *Balancer, key string, flags VIPFlags, reals ...string) VIPKey {
	t.Helper()
	k, err := ParseVIPKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddVIP(VIP{Key: k, Flags: flags}); err != nil {
		t.Fatalf("AddVIP %s: %v", key, err)
	}
	for _, r := range reals {
		if err := b.AddReal(k, Real{Addr: addr(r), Weight: 1}); err != nil {
			t.Fatalf("AddReal %s %s: %v", key, r, err)
		}
	}
	return k
}

// run passes one frame through the program and returns action and output.
// It runs on CPU 0: the connection table is per CPU, and a flow's second
// packet must meet the table its first packet filled.
func run(t *testing.T, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256), Repeat: 1}
	var ret uint32
	err := onCPU(0, func() (err error) {
		ret, err = prog.Run(opts)
		return err
	})
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return ret, opts.DataOut
}

// onCPU runs fn on a thread bound to one CPU, and unbinds it afterwards.
func onCPU(cpu int, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return err
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return err
	}
	defer unix.SchedSetaffinity(0, &orig)
	return fn()
}

// Frame builders for the tests: client -> LB and LB -> gateway.

func ethIn(typ uint16, ip []byte) []byte {
	return testpkt.Eth{Dst: lbMAC, Src: clientMAC, Type: typ}.Frame(ip)
}

func v4(src, dst string, proto uint8, l4 []byte) []byte {
	return testpkt.IPv4{ID: 1, TTL: 64, Proto: proto, Src: addr(src), Dst: addr(dst)}.Packet(l4)
}

func v6(src, dst string, nh uint8, l4 []byte) []byte {
	return testpkt.IPv6{NextHeader: nh, HopLimit: 64, Src: addr(src), Dst: addr(dst)}.Packet(l4)
}

func tcp4(src string, sport uint16, dst string, dport uint16, flags uint8) []byte {
	seg := testpkt.TCP{SrcPort: sport, DstPort: dport, Flags: flags, Window: 8192}.Segment(addr(src), addr(dst), payload)
	return v4(src, dst, testpkt.ProtoTCP, seg)
}

func udp4(src string, sport uint16, dst string, dport uint16, body []byte) []byte {
	return v4(src, dst, testpkt.ProtoUDP, testpkt.UDP{SrcPort: sport, DstPort: dport}.Datagram(addr(src), addr(dst), body))
}

func tcp6(src string, sport uint16, dst string, dport uint16, flags uint8, body []byte) []byte {
	seg := testpkt.TCP{SrcPort: sport, DstPort: dport, Flags: flags, Window: 8192}.Segment(addr(src), addr(dst), body)
	return v6(src, dst, testpkt.ProtoTCP, seg)
}

// ipip4Out is what the balancer must send for inner to an IPv4 real.
func ipip4Out(outerSrc, real string, tos uint8, inner []byte) []byte {
	outer := testpkt.IPv4{TOS: tos, TTL: 64, Proto: testpkt.ProtoIPIP, Src: addr(outerSrc), Dst: addr(real)}
	return testpkt.Eth{Dst: gwMAC, Src: lbMAC, Type: testpkt.EtherTypeIPv4}.Frame(outer.Packet(inner))
}

// ip6Out is what the balancer must send for inner to an IPv6 real.
func ip6Out(outerSrc, real string, tc uint8, inner []byte) []byte {
	nh := uint8(testpkt.ProtoIPv6)
	if inner[0]>>4 == 4 {
		nh = testpkt.ProtoIPIP
	}
	outer := testpkt.IPv6{TrafficClass: tc, NextHeader: nh, HopLimit: 64, Src: addr(outerSrc), Dst: addr(real)}
	return testpkt.Eth{Dst: gwMAC, Src: lbMAC, Type: testpkt.EtherTypeIPv6}.Frame(outer.Packet(inner))
}

func withTOS(ip []byte, tos uint8) []byte {
	h := testpkt.IPv4{TOS: tos, ID: 1, TTL: 64, Proto: ip[9], Src: netip.AddrFrom4([4]byte(ip[12:16])), Dst: netip.AddrFrom4([4]byte(ip[16:20]))}
	return h.Packet(ip[20:])
}

type packetCase struct {
	name  string
	in    []byte
	want  uint32
	out   []byte               // nil: the output must equal the input
	count func(s Stats) uint64 // a counter that must go up by exactly one
}

func runCases(t *testing.T, b *Balancer, cases []packetCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := b.Stats()
			if err != nil {
				t.Fatal(err)
			}
			act, got := run(t, b.Program(), tc.in)
			if act != tc.want {
				t.Fatalf("action %d, want %d\n got %s", act, tc.want, testpkt.Describe(got))
			}
			want := tc.out
			if want == nil {
				want = tc.in
			}
			if d := testpkt.Diff(got, want); d != "" {
				t.Fatalf("output frame differs:\n%s", d)
			}
			after, err := b.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if tc.count != nil {
				if d := tc.count(after) - tc.count(before); d != 1 {
					t.Errorf("counter moved by %d, want 1", d)
				}
			}
			actions := func(s Stats) uint64 { return s.XdpTx + s.XdpPass + s.XdpDrop + s.XdpAborted }
			if d := actions(after) - actions(before); d != 1 {
				t.Errorf("action counters moved by %d, want 1", d)
			}
		})
	}
}

// standardVIPs programs single-real VIPs, so every expected frame is
// independent of the hash; hashing has tests of its own.
func standardVIPs(t *testing.T, b *Balancer) {
	mustVIP(t, b, "10.200.1.1:80/udp", 0, "10.0.0.3")
	mustVIP(t, b, "10.200.1.1:80/tcp", 0, "10.0.0.3")
	mustVIP(t, b, "10.200.1.2:0/tcp", 0, "10.0.0.2")
	mustVIP(t, b, "10.200.1.3:80/tcp", 0, "fc00::1")
	mustVIP(t, b, "[fc00:1::1]:80/tcp", 0, "fc00::3")
	mustVIP(t, b, "[fc00:1::1]:53/udp", 0, "fc00::2")
	mustVIP(t, b, "10.200.1.9:80/tcp", 0) // no reals
	mustVIP(t, b, "10.200.1.4:0/tcp", FlagDportOnly, "10.0.0.2")
}

func TestForwarding(t *testing.T) {
	b := newTestBalancer(t, Config{})
	standardVIPs(t, b)

	synV4 := tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPSyn)
	ackV4 := tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPAck)
	udpV4 := udp4("192.168.1.1", 31337, "10.200.1.1", 80, payload)
	anyPort := tcp4("192.168.1.1", 31337, "10.200.1.2", 42, testpkt.TCPAck)
	v4v6 := tcp4("192.168.1.1", 31337, "10.200.1.3", 80, testpkt.TCPAck)
	tcpV6 := tcp6("fc00:2::1", 31337, "fc00:1::1", 80, testpkt.TCPAck, payload)
	tcpV6tc := testpkt.IPv6{TrafficClass: 0x8c, NextHeader: testpkt.ProtoTCP, HopLimit: 64, Src: addr("fc00:2::1"), Dst: addr("fc00:1::1")}.
		Packet(testpkt.TCP{SrcPort: 31337, DstPort: 80, Flags: testpkt.TCPAck, Window: 8192}.Segment(addr("fc00:2::1"), addr("fc00:1::1"), payload))
	udpV6 := v6("fc00:2::1", "fc00:1::1", testpkt.ProtoUDP, testpkt.UDP{SrcPort: 5353, DstPort: 53}.Datagram(addr("fc00:2::1"), addr("fc00:1::1"), payload))
	tosV4 := withTOS(ackV4, 0x8c)
	dportOnly := tcp4("192.168.1.1", 31337, "10.200.1.4", 42, testpkt.TCPAck)

	// Outer sources by the documented rule: IPv4 172.16.(c^lo(sport)).(d^hi(sport));
	// IPv6 100:: + (low 32 bits of the client ^ sport<<16). 31337 = 0x7a69.
	cases := []packetCase{
		{"v4 UDP", ethIn(testpkt.EtherTypeIPv4, udpV4), xdpTx, ipip4Out("172.16.104.123", "10.0.0.3", 0, udpV4), func(s Stats) uint64 { return s.XdpTx }},
		{"v4 TCP SYN", ethIn(testpkt.EtherTypeIPv4, synV4), xdpTx, ipip4Out("172.16.104.123", "10.0.0.3", 0, synV4), func(s Stats) uint64 { return s.ConnMissTcpSyn }},
		{"v4 TCP non-SYN, table hit", ethIn(testpkt.EtherTypeIPv4, ackV4), xdpTx, ipip4Out("172.16.104.123", "10.0.0.3", 0, ackV4), func(s Stats) uint64 { return s.ConnHit }},
		{"v4 TOS copied", ethIn(testpkt.EtherTypeIPv4, tosV4), xdpTx, ipip4Out("172.16.104.123", "10.0.0.3", 0x8c, tosV4), nil},
		{"v4 port-0 VIP, any port", ethIn(testpkt.EtherTypeIPv4, anyPort), xdpTx, ipip4Out("172.16.104.123", "10.0.0.2", 0, anyPort), nil},
		{"v4 VIP, v6 real", ethIn(testpkt.EtherTypeIPv4, v4v6), xdpTx, ip6Out("100::bac1:101", "fc00::1", 0, v4v6), nil},
		{"v6 TCP", ethIn(testpkt.EtherTypeIPv6, tcpV6), xdpTx, ip6Out("100::7a69:1", "fc00::3", 0, tcpV6), func(s Stats) uint64 { return s.ConnMissTcpOther }},
		{"v6 traffic class copied", ethIn(testpkt.EtherTypeIPv6, tcpV6tc), xdpTx, ip6Out("100::7a69:1", "fc00::3", 0x8c, tcpV6tc), nil},
		{"v6 UDP", ethIn(testpkt.EtherTypeIPv6, udpV6), xdpTx, ip6Out("100::14e9:1", "fc00::2", 0, udpV6), func(s Stats) uint64 { return s.ConnMissUdp }},
		// dport_only: the outer source mixes the port into 0.0.0.0, as Katran does.
		{"dport_only outer source", ethIn(testpkt.EtherTypeIPv4, dportOnly), xdpTx, ipip4Out("172.16.105.122", "10.0.0.2", 0, dportOnly), nil},
		{"VIP without reals", ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 31337, "10.200.1.9", 80, testpkt.TCPSyn)), xdpDrop, nil, func(s Stats) uint64 { return s.DropNoReal }},
		{"v4 unknown port", ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 31337, "10.200.1.1", 82, testpkt.TCPAck)), xdpPass, nil, func(s Stats) uint64 { return s.XdpPass }},
		{"v6 unknown port", ethIn(testpkt.EtherTypeIPv6, tcp6("fc00:2::1", 31337, "fc00:1::1", 82, testpkt.TCPAck, payload)), xdpPass, nil, nil},
		{"v4 not a VIP", ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 31337, "192.0.2.2", 80, testpkt.TCPSyn)), xdpPass, nil, nil},
		{"ARP", testpkt.Eth{Dst: testpkt.MAC("ff:ff:ff:ff:ff:ff"), Src: clientMAC, Type: testpkt.EtherTypeARP}.Frame(make([]byte, 28)), xdpPass, nil, nil},
		{"IPIP to a non-VIP", ethIn(testpkt.EtherTypeIPv4, v4("172.16.1.1", "172.16.100.1", testpkt.ProtoIPIP, udpV4)), xdpPass, nil, nil},
		{"IP6IP6 to a non-VIP", ethIn(testpkt.EtherTypeIPv6, v6("100::1", "100::2", testpkt.ProtoIPv6, tcpV6)), xdpPass, nil, nil},
		{"GRE to a VIP address", ethIn(testpkt.EtherTypeIPv4, v4("192.168.1.1", "10.200.1.1", 47, payload)), xdpPass, nil, nil},
	}
	runCases(t, b, cases)
}

func TestICMP(t *testing.T) {
	b := newTestBalancer(t, Config{})
	standardVIPs(t, b)

	echo := testpkt.ICMPv4{Type: 8, Rest: testpkt.EchoRest(7, 1)}.Message(payload)
	echoReq := v4("192.168.1.1", "10.200.1.3", testpkt.ProtoICMP, echo)
	echoRep := testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoICMP, Src: addr("10.200.1.3"), Dst: addr("192.168.1.1")}.
		Packet(testpkt.ICMPv4{Type: 0, Rest: testpkt.EchoRest(7, 1)}.Message(payload))
	echo6Req := v6("fc00:2::1", "fc00:1::1", testpkt.ProtoICMPv6,
		testpkt.ICMPv6{Type: 128, Rest: testpkt.EchoRest(9, 2)}.Message(addr("fc00:2::1"), addr("fc00:1::1"), payload))
	echo6Rep := v6("fc00:1::1", "fc00:2::1", testpkt.ProtoICMPv6,
		testpkt.ICMPv6{Type: 129, Rest: testpkt.EchoRest(9, 2)}.Message(addr("fc00:1::1"), addr("fc00:2::1"), payload))
	// A request whose reply sums to zero: the reply's checksum must be 0xffff.
	zeroReq := v4("192.168.1.1", "10.200.1.3", testpkt.ProtoICMP, testpkt.ICMPv4{Type: 8}.Message(nil))
	zeroRep := testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoICMP, Src: addr("10.200.1.3"), Dst: addr("192.168.1.1")}.
		Packet([]byte{0, 0, 0xff, 0xff, 0, 0, 0, 0})
	reply := func(typ uint16, ip []byte) []byte {
		return testpkt.Eth{Dst: clientMAC, Src: lbMAC, Type: typ}.Frame(ip)
	}

	// An ICMP error from a router on the path about a packet the real sent
	// (VIP -> client): it goes to the real that owns the flow, with the
	// flow's outer source.
	quoted := tcp4("10.200.1.1", 80, "192.168.1.1", 31337, testpkt.TCPSyn)
	fragNeeded := v4("192.168.100.1", "10.200.1.1", testpkt.ProtoICMP, testpkt.ICMPv4{Type: 3, Code: 4, Rest: testpkt.FragNeededRest(1400)}.Message(quoted))
	quoted6 := tcp6("fc00:1::1", 80, "fc00:2::1", 31337, testpkt.TCPSyn, payload)
	ptb := v6("fc00:200::1", "fc00:1::1", testpkt.ProtoICMPv6, testpkt.ICMPv6{Type: 2, Rest: testpkt.PacketTooBigRest(1280)}.Message(addr("fc00:200::1"), addr("fc00:1::1"), quoted6))
	// The same error, but about a flow of no VIP, or addressed elsewhere.
	quotedOther := tcp4("10.200.1.77", 80, "192.168.1.1", 31337, testpkt.TCPSyn)
	strayErr := v4("192.168.100.1", "10.200.1.77", testpkt.ProtoICMP, testpkt.ICMPv4{Type: 3, Code: 4}.Message(quotedOther))
	misaddressed := v4("192.168.100.1", "10.200.1.2", testpkt.ProtoICMP, testpkt.ICMPv4{Type: 3, Code: 4}.Message(quoted))

	cases := []packetCase{
		{"v4 echo to a VIP", ethIn(testpkt.EtherTypeIPv4, echoReq), xdpTx, reply(testpkt.EtherTypeIPv4, echoRep), func(s Stats) uint64 { return s.IcmpEchoReply }},
		{"v6 echo to a VIP", ethIn(testpkt.EtherTypeIPv6, echo6Req), xdpTx, reply(testpkt.EtherTypeIPv6, echo6Rep), func(s Stats) uint64 { return s.IcmpEchoReply }},
		{"v4 echo whose reply sums to zero", ethIn(testpkt.EtherTypeIPv4, zeroReq), xdpTx, reply(testpkt.EtherTypeIPv4, zeroRep), nil},
		{"v4 echo to the host (not a VIP)", ethIn(testpkt.EtherTypeIPv4, v4("192.168.1.1", "192.0.2.2", testpkt.ProtoICMP, echo)), xdpPass, nil, nil},
		{"v4 frag-needed steered to the flow's real", ethIn(testpkt.EtherTypeIPv4, fragNeeded), xdpTx, ipip4Out("172.16.104.123", "10.0.0.3", 0, fragNeeded), func(s Stats) uint64 { return s.IcmpErrorFwd }},
		{"v6 packet-too-big steered to the flow's real", ethIn(testpkt.EtherTypeIPv6, ptb), xdpTx, ip6Out("100::7a69:1", "fc00::3", 0, ptb), func(s Stats) uint64 { return s.IcmpErrorFwd }},
		{"ICMP error about a non-VIP flow", ethIn(testpkt.EtherTypeIPv4, strayErr), xdpPass, nil, nil},
		{"ICMP error not addressed to the quoted VIP", ethIn(testpkt.EtherTypeIPv4, misaddressed), xdpPass, nil, nil},
	}
	runCases(t, b, cases)
}

func TestTooBig(t *testing.T) {
	b := newTestBalancer(t, Config{})
	standardVIPs(t, b)

	big4 := udp4("192.168.1.1", 31337, "10.200.1.1", 80, bytes.Repeat([]byte{0xab}, 1473)) // IP length 1501
	// IPv4 with an IPIP header must fit 1500: next-hop MTU 1480, and the
	// quote is the first 84 bytes of the offending packet.
	icmp4 := testpkt.ICMPv4{Type: 3, Code: 4, Rest: testpkt.FragNeededRest(1480)}.Message(big4[:84])
	want4 := testpkt.Eth{Dst: clientMAC, Src: lbMAC, Type: testpkt.EtherTypeIPv4}.Frame(
		testpkt.IPv4{TTL: 64, Proto: testpkt.ProtoICMP, Src: addr("10.200.1.1"), Dst: addr("192.168.1.1")}.Packet(icmp4))

	fits4 := udp4("192.168.1.1", 31337, "10.200.1.1", 80, bytes.Repeat([]byte{0xab}, 1452)) // IP length 1480

	big6 := tcp6("fc00:2::1", 31337, "fc00:1::1", 80, testpkt.TCPAck, bytes.Repeat([]byte{0xcd}, 1401)) // IP length 1461
	icmp6 := testpkt.ICMPv6{Type: 2, Rest: testpkt.PacketTooBigRest(1460)}.Message(addr("fc00:1::1"), addr("fc00:2::1"), big6[:248])
	want6 := testpkt.Eth{Dst: clientMAC, Src: lbMAC, Type: testpkt.EtherTypeIPv6}.Frame(
		testpkt.IPv6{NextHeader: testpkt.ProtoICMPv6, HopLimit: 64, Src: addr("fc00:1::1"), Dst: addr("fc00:2::1")}.Packet(icmp6))

	// An IPv4 VIP with an IPv6 real: the outer header is 40 bytes.
	big46 := v4("192.168.1.1", "10.200.1.3", testpkt.ProtoTCP,
		testpkt.TCP{SrcPort: 31337, DstPort: 80, Flags: testpkt.TCPAck}.Segment(addr("192.168.1.1"), addr("10.200.1.3"), bytes.Repeat([]byte{1}, 1421))) // 1461
	icmp46 := testpkt.ICMPv4{Type: 3, Code: 4, Rest: testpkt.FragNeededRest(1460)}.Message(big46[:84])
	want46 := testpkt.Eth{Dst: clientMAC, Src: lbMAC, Type: testpkt.EtherTypeIPv4}.Frame(
		testpkt.IPv4{TTL: 64, Proto: testpkt.ProtoICMP, Src: addr("10.200.1.3"), Dst: addr("192.168.1.1")}.Packet(icmp46))

	runCases(t, b, []packetCase{
		{"v4 too big", ethIn(testpkt.EtherTypeIPv4, big4), xdpTx, want4, func(s Stats) uint64 { return s.IcmpTooBig }},
		{"v4 largest that fits", ethIn(testpkt.EtherTypeIPv4, fits4), xdpTx, ipip4Out("172.16.104.123", "10.0.0.3", 0, fits4), nil},
		{"v6 too big", ethIn(testpkt.EtherTypeIPv6, big6), xdpTx, want6, func(s Stats) uint64 { return s.IcmpTooBig }},
		{"v4 VIP with v6 real too big", ethIn(testpkt.EtherTypeIPv4, big46), xdpTx, want46, func(s Stats) uint64 { return s.IcmpTooBig }},
	})

	quiet := newTestBalancer(t, Config{NoICMPTooBig: true})
	standardVIPs(t, quiet)
	runCases(t, quiet, []packetCase{
		{"too big, ICMP disabled", ethIn(testpkt.EtherTypeIPv4, big4), xdpDrop, nil, func(s Stats) uint64 { return s.DropTooBig }},
	})
}

func TestMalformed(t *testing.T) {
	b := newTestBalancer(t, Config{})
	standardVIPs(t, b)

	good := tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPAck)
	seg := good[20:]
	withOpts := testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoTCP, Src: addr("192.168.1.1"), Dst: addr("10.200.1.1"), Options: []byte{1, 1, 1, 0}}.Packet(seg)
	ip4 := func(h testpkt.IPv4, body []byte) []byte {
		h.TTL, h.Src = 64, addr("192.168.1.1")
		if !h.Dst.IsValid() {
			h.Dst = addr("10.200.1.1")
		}
		if h.Proto == 0 {
			h.Proto = testpkt.ProtoTCP
		}
		return ethIn(testpkt.EtherTypeIPv4, h.Packet(body))
	}
	ip6 := func(nh uint8, dst string, body []byte) []byte {
		return ethIn(testpkt.EtherTypeIPv6, v6("fc00:2::1", dst, nh, body))
	}
	tcp6seg := testpkt.TCP{SrcPort: 31337, DstPort: 80, Flags: testpkt.TCPAck}.Segment(addr("fc00:2::1"), addr("fc00:1::1"), payload)
	vlan := append(testpkt.VLAN(100, testpkt.EtherTypeIPv4), good...)

	drop := func(s Stats) uint64 { return s.DropMalformed }
	passBad := func(s Stats) uint64 { return s.PassMalformed }
	cases := []packetCase{
		{"Ethernet header only", ethIn(testpkt.EtherTypeIPv4, nil), xdpPass, nil, passBad},
		{"IPv4 header truncated", ethIn(testpkt.EtherTypeIPv4, good[:12]), xdpPass, nil, passBad},
		{"IPv4 IHL 4", ip4(testpkt.IPv4{IHL: 4}, seg), xdpPass, nil, passBad},
		{"IPv4 version 6 in an IPv4 frame", ethIn(testpkt.EtherTypeIPv4, append([]byte{0x65}, good[1:]...)), xdpPass, nil, passBad},
		{"IPv4 options to a VIP", ethIn(testpkt.EtherTypeIPv4, withOpts), xdpDrop, nil, func(s Stats) uint64 { return s.DropIpOptions }},
		{"IPv4 options to the host", ip4(testpkt.IPv4{Dst: addr("192.0.2.2"), Options: []byte{1, 1, 1, 0}}, seg), xdpPass, nil, nil},
		{"IPv4 first fragment to a VIP", ip4(testpkt.IPv4{MF: true}, seg), xdpDrop, nil, func(s Stats) uint64 { return s.DropFragment }},
		{"IPv4 later fragment to a VIP", ip4(testpkt.IPv4{FragOffset: 4}, payload), xdpDrop, nil, func(s Stats) uint64 { return s.DropFragment }},
		{"IPv4 fragment to the host", ip4(testpkt.IPv4{Dst: addr("192.0.2.2"), MF: true, Proto: testpkt.ProtoUDP}, seg), xdpPass, nil, nil},
		{"IPv4 total length past the frame", ip4(testpkt.IPv4{TotalLen: 200}, seg), xdpDrop, nil, drop},
		{"IPv4 total length below the header", ip4(testpkt.IPv4{TotalLen: 19}, seg), xdpDrop, nil, drop},
		{"TCP header truncated", ip4(testpkt.IPv4{}, seg[:12]), xdpDrop, nil, drop},
		{"UDP header truncated", ip4(testpkt.IPv4{Proto: testpkt.ProtoUDP}, []byte{0x7a, 0x69, 0, 80}), xdpDrop, nil, drop},
		{"ICMP header truncated", ip4(testpkt.IPv4{Proto: testpkt.ProtoICMP}, []byte{8, 0}), xdpDrop, nil, drop},
		{"ICMP error with a truncated quote", ip4(testpkt.IPv4{Proto: testpkt.ProtoICMP}, testpkt.ICMPv4{Type: 3, Code: 1}.Message(good[:22])), xdpPass, nil, nil},
		{"IPv6 header truncated", ethIn(testpkt.EtherTypeIPv6, make([]byte, 30)), xdpPass, nil, passBad},
		{"IPv6 version 4 in an IPv6 frame", ethIn(testpkt.EtherTypeIPv6, append([]byte{0x40}, make([]byte, 59)...)), xdpPass, nil, passBad},
		{"IPv6 fragment to a VIP", ip6(testpkt.ProtoIPv6Frag, "fc00:1::1", append(testpkt.IPv6Fragment(testpkt.ProtoTCP, 0, true, 1), tcp6seg...)), xdpDrop, nil, func(s Stats) uint64 { return s.DropFragment }},
		{"IPv6 hop-by-hop to a VIP", ip6(testpkt.ProtoHopByHop, "fc00:1::1", append(testpkt.IPv6Options(testpkt.ProtoTCP, 6), tcp6seg...)), xdpDrop, nil, func(s Stats) uint64 { return s.DropIpOptions }},
		{"IPv6 hop-by-hop to the host", ip6(testpkt.ProtoHopByHop, "2001:db8::2", append(testpkt.IPv6Options(testpkt.ProtoICMPv6, 6), 143, 0, 0, 0)), xdpPass, nil, nil},
		{"IPv6 fragment to the host", ip6(testpkt.ProtoIPv6Frag, "2001:db8::2", append(testpkt.IPv6Fragment(testpkt.ProtoUDP, 0, true, 1), tcp6seg...)), xdpPass, nil, nil},
		{"IPv6 payload length past the frame", ethIn(testpkt.EtherTypeIPv6, testpkt.IPv6{NextHeader: testpkt.ProtoTCP, HopLimit: 64, Src: addr("fc00:2::1"), Dst: addr("fc00:1::1"), PayloadLen: 500}.Packet(tcp6seg)), xdpDrop, nil, drop},
		{"IPv6 TCP truncated", ip6(testpkt.ProtoTCP, "fc00:1::1", tcp6seg[:10]), xdpDrop, nil, drop},
		{"VLAN-tagged frame", ethIn(0x8100, vlan[14:]), xdpPass, nil, nil},
	}
	runCases(t, b, cases)
}

// Zero-length headers below Ethernet are refused by the kernel's test run,
// so the shortest frame tested is an Ethernet header alone.

func TestFlagsAndTable(t *testing.T) {
	b := newTestBalancer(t, Config{})
	reals := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	plain := mustVIP(t, b, "10.200.2.1:80/tcp", 0, reals...)
	noSport := mustVIP(t, b, "10.200.2.2:80/tcp", FlagNoSrcPort, reals...)
	bypass := mustVIP(t, b, "10.200.2.3:80/tcp", FlagLRUBypass, reals...)

	realOf := func(frame []byte) netip.Addr {
		t.Helper()
		act, out := run(t, b.Program(), frame)
		if act != xdpTx {
			t.Fatalf("action %d, want XDP_TX: %s", act, testpkt.Describe(out))
		}
		return netip.AddrFrom4([4]byte(out[14+16 : 14+20]))
	}
	syn := func(vip netip.Addr, client string, sport uint16) []byte {
		return ethIn(testpkt.EtherTypeIPv4, tcp4(client, sport, vip.String(), 80, testpkt.TCPSyn))
	}

	t.Run("flows spread and the kernel agrees with RealFor", func(t *testing.T) {
		seen := map[netip.Addr]int{}
		for i := range 300 {
			client := netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)})
			sport := uint16(1024 + i*7)
			got := realOf(syn(plain.Addr, client.String(), sport))
			want, err := b.RealFor(plain, Flow{Src: netip.AddrPortFrom(client, sport), Dst: netip.AddrPortFrom(plain.Addr, 80), Proto: TCP})
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("flow %s:%d went to %s, RealFor says %s", client, sport, got, want)
			}
			seen[got]++
		}
		if len(seen) != 3 {
			t.Fatalf("300 flows used reals %v, want all 3", seen)
		}
	})

	t.Run("no_src_port keeps a client on one real", func(t *testing.T) {
		first := realOf(syn(noSport.Addr, "192.168.7.7", 1000))
		for sport := uint16(1001); sport < 1100; sport++ {
			if got := realOf(syn(noSport.Addr, "192.168.7.7", sport)); got != first {
				t.Fatalf("source port %d went to %s, port 1000 to %s", sport, got, first)
			}
		}
	})

	t.Run("table hit keeps the real when the ring changes", func(t *testing.T) {
		first := realOf(syn(plain.Addr, "192.168.9.9", 4242))
		frame := ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.9.9", 4242, plain.Addr.String(), 80, testpkt.TCPAck))
		// Leave only another real in the ring, weight-0 for the first: a
		// new flow could not reach it, an established one must.
		for _, r := range reals {
			w := uint32(1)
			if addr(r) == first {
				w = 0
			}
			if err := b.UpdateReal(plain, Real{Addr: addr(r), Weight: w}); err != nil {
				t.Fatal(err)
			}
		}
		if got := realOf(frame); got != first {
			t.Fatalf("established flow moved from %s to %s after a ring change", first, got)
		}
		if got := realOf(syn(plain.Addr, "192.168.9.9", 4243)); got == first {
			t.Fatalf("new flow went to weight-0 real %s", got)
		}
		// Down (not draining): established flows are re-placed.
		if err := b.UpdateReal(plain, Real{Addr: first, Weight: 0, State: Down}); err != nil {
			t.Fatal(err)
		}
		before, _ := b.Stats()
		if got := realOf(frame); got == first {
			t.Fatalf("flow stayed on real %s that is down", got)
		}
		after, _ := b.Stats()
		if after.ConnRepickDown != before.ConnRepickDown+1 {
			t.Errorf("ConnRepickDown %d -> %d, want +1", before.ConnRepickDown, after.ConnRepickDown)
		}
	})

	t.Run("lru_bypass follows the ring at once and counts no table use", func(t *testing.T) {
		frame := syn(bypass.Addr, "192.168.5.5", 5555)
		before, _ := b.Stats()
		first := realOf(frame)
		after, _ := b.Stats()
		if after.ConnMissTcpSyn != before.ConnMissTcpSyn || after.ConnHit != before.ConnHit {
			t.Errorf("lru_bypass VIP touched the connection table: %+v -> %+v", before, after)
		}
		if err := b.UpdateReal(bypass, Real{Addr: first, Weight: 0}); err != nil {
			t.Fatal(err)
		}
		if got := realOf(frame); got == first {
			t.Fatalf("lru_bypass flow stayed on weight-0 real %s", got)
		}
	})
}

func TestOuterSourceStablePerFlowAndSpread(t *testing.T) {
	b := newTestBalancer(t, Config{})
	mustVIP(t, b, "10.200.1.1:80/udp", 0, "10.0.0.3")
	mustVIP(t, b, "[fc00:1::1]:80/udp", 0, "fc00::3")
	outerSrc := func(frame []byte, v6 bool) netip.Addr {
		act, out := run(t, b.Program(), frame)
		if act != xdpTx {
			t.Fatalf("action %d", act)
		}
		if v6 {
			return netip.AddrFrom16([16]byte(out[14+8 : 14+24]))
		}
		return netip.AddrFrom4([4]byte(out[14+12 : 14+16]))
	}
	for _, fam := range []struct {
		v6  bool
		vip string
		src func(i int) string
	}{
		{false, "10.200.1.1", func(i int) string { return netip.AddrFrom4([4]byte{192, 168, byte(i), byte(i * 3)}).String() }},
		{true, "fc00:1::1", func(i int) string {
			return netip.AddrFrom16([16]byte{0xfc, 0, 0, 2, 14: byte(i), 15: byte(i * 3)}).String()
		}},
	} {
		seen := map[netip.Addr]bool{}
		for i := range 200 {
			var ip []byte
			if fam.v6 {
				ip = v6(fam.src(i), fam.vip, testpkt.ProtoUDP, testpkt.UDP{SrcPort: uint16(2000 + i), DstPort: 80}.Datagram(addr(fam.src(i)), addr(fam.vip), payload))
			} else {
				ip = udp4(fam.src(i), uint16(2000+i), fam.vip, 80, payload)
			}
			typ := uint16(testpkt.EtherTypeIPv4)
			if fam.v6 {
				typ = testpkt.EtherTypeIPv6
			}
			frame := ethIn(typ, ip)
			a, c := outerSrc(frame, fam.v6), outerSrc(frame, fam.v6)
			if a != c {
				t.Fatalf("v6=%v flow %d: outer source %s then %s", fam.v6, i, a, c)
			}
			prefix := netip.MustParsePrefix("172.16.0.0/16")
			if fam.v6 {
				prefix = netip.MustParsePrefix("100::/96")
			}
			if !prefix.Contains(a) {
				t.Fatalf("outer source %s outside %s", a, prefix)
			}
			seen[a] = true
		}
		if len(seen) < 190 {
			t.Errorf("v6=%v: 200 flows used only %d outer sources", fam.v6, len(seen))
		}
	}
}

func TestConfiguredPrefixesAndGateway(t *testing.T) {
	b := newTestBalancer(t, Config{
		SourcePrefixV4: netip.MustParsePrefix("10.99.0.0/16"),
		SourcePrefixV6: netip.MustParsePrefix("2001:db8:99::/96"),
		GatewayMAC:     net.HardwareAddr{0, 0, 0, 0, 0, 0},
	})
	mustVIP(t, b, "10.200.1.1:80/udp", 0, "10.0.0.3")
	mustVIP(t, b, "10.200.1.3:80/udp", 0, "fc00::1")
	udp := udp4("192.168.1.1", 31337, "10.200.1.1", 80, payload)
	udp46 := udp4("192.168.1.1", 31337, "10.200.1.3", 80, payload)
	runCases(t, b, []packetCase{
		{"no gateway yet: drop", ethIn(testpkt.EtherTypeIPv4, udp), xdpDrop, nil, func(s Stats) uint64 { return s.DropNoGateway }},
	})
	if b.GatewayMAC() != nil {
		t.Fatalf("GatewayMAC = %s before one was set", b.GatewayMAC())
	}
	if err := b.SetGatewayMAC(gwMAC); err != nil {
		t.Fatal(err)
	}
	runCases(t, b, []packetCase{
		{"v4 prefix", ethIn(testpkt.EtherTypeIPv4, udp), xdpTx, ipip4Out("10.99.104.123", "10.0.0.3", 0, udp), nil},
		{"v6 prefix", ethIn(testpkt.EtherTypeIPv4, udp46), xdpTx, ip6Out("2001:db8:99::bac1:101", "fc00::1", 0, udp46), nil},
	})
}
