package testpkt

import (
	"slices"
	"strings"
	"testing"
)

// Addresses and frames shared by the Describe and Diff tests.
var (
	client4, vip4, lb4, real4 = Addr("192.168.1.1"), Addr("10.200.1.1"), Addr("172.16.104.123"), Addr("10.0.0.3")
	client6, vip6, lb6, real6 = Addr("fc00:2::1"), Addr("fc00:1::1"), Addr("100::1"), Addr("100::2")
	katranPayload             = []byte("katran test pkt")
)

func udp4Packet() []byte {
	return IPv4{ID: 1, TTL: 64, Proto: ProtoUDP, Src: client4, Dst: vip4}.Packet(
		UDP{SrcPort: 31337, DstPort: 80}.Datagram(client4, vip4, katranPayload))
}

func tcp6Packet() []byte {
	return IPv6{NextHeader: ProtoTCP, HopLimit: 64, Src: client6, Dst: vip6}.Packet(
		TCP{SrcPort: 31337, DstPort: 80, Flags: TCPAck, Window: 8192}.Segment(client6, vip6, katranPayload))
}

func eth4(p []byte) []byte { return Eth{Dst: mac2, Src: mac1, Type: EtherTypeIPv4}.Frame(p) }
func eth6(p []byte) []byte { return Eth{Dst: mac2, Src: mac1, Type: EtherTypeIPv6}.Frame(p) }

// describeFrames are well-formed frames with the Describe line expected for
// each. All of them are also used to check truncated and mutated input.
var describeFrames = []struct {
	name  string
	frame func() []byte
	want  string
}{
	{
		"ipip",
		func() []byte {
			return Eth{Dst: gw, Src: mac2, Type: EtherTypeIPv4}.Frame(
				IPv4{TTL: 64, Proto: ProtoIPIP, Src: lb4, Dst: real4}.Packet(udp4Packet()))
		},
		"eth 02:00:00:00:00:00>00:00:de:ad:be:af | ipv4 172.16.104.123>10.0.0.3 proto 4 ttl 64 len 63 | " +
			"ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23",
	},
	{
		"ipv6 in ipv6",
		func() []byte {
			return eth6(IPv6{TrafficClass: 0x8c, FlowLabel: 0x12345, NextHeader: ProtoIPv6, HopLimit: 64, Src: lb6, Dst: real6}.Packet(tcp6Packet()))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 100::1>100::2 next 41 hlim 64 len 75 tc 0x8c flow 0x12345 | " +
			"ipv6 fc00:2::1>fc00:1::1 next 6 hlim 64 len 35 | tcp 31337>80 flags ACK seq 0 ack 0 win 8192 len 15",
	},
	{
		"ipv4 in ipv6",
		func() []byte {
			return eth6(IPv6{NextHeader: ProtoIPIP, HopLimit: 64, Src: lb6, Dst: real6}.Packet(udp4Packet()))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 100::1>100::2 next 4 hlim 64 len 43 | " +
			"ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23",
	},
	{
		"tcp flags seq ack",
		func() []byte {
			return eth4(IPv4{TOS: 0x8c, DF: true, TTL: 1, Proto: ProtoTCP, Src: client4, Dst: vip4}.Packet(
				TCP{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: TCPSyn | TCPAck | TCPEce, Window: 5}.Segment(client4, vip4, nil)))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 6 ttl 1 len 40 tos 0x8c DF | " +
			"tcp 1>2 flags SYN|ACK|ECE seq 3 ack 4 win 5 len 0",
	},
	{
		"icmp frag needed quoting tcp",
		func() []byte {
			router := Addr("192.168.100.1")
			quoted := IPv4{ID: 1, TTL: 64, Proto: ProtoTCP, Src: vip4, Dst: client4}.Packet(
				TCP{SrcPort: 80, DstPort: 31337, Flags: TCPSyn, Window: 8192}.Segment(vip4, client4, katranPayload))
			return eth4(IPv4{TTL: 64, Proto: ProtoICMP, Src: router, Dst: vip4}.Packet(
				ICMPv4{Type: ICMPDestUnreach, Code: ICMPCodeFragNeeded, Rest: FragNeededRest(1400)}.Message(quoted[:28])))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.100.1>10.200.1.1 proto 1 ttl 64 len 56 | icmp type 3 code 4 mtu 1400 | " +
			"ipv4 10.200.1.1>192.168.1.1 proto 6 ttl 64 len 55 id 1 truncated (28 of 55 bytes) | tcp 80>31337 truncated (8 of 20 header bytes)",
	},
	{
		"icmp echo",
		func() []byte {
			return eth4(IPv4{TTL: 64, Proto: ProtoICMP, Src: client4, Dst: vip4}.Packet(
				ICMPv4{Type: ICMPEchoRequest, Rest: EchoRest(7, 9)}.Message([]byte("abc"))))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 1 ttl 64 len 31 | icmp type 8 code 0 id 7 seq 9 len 3",
	},
	{
		"icmp6 packet too big quoting udp6 in ipv6",
		func() []byte {
			router := Addr("fc00:200::1")
			inner := IPv6{NextHeader: ProtoUDP, HopLimit: 64, Src: vip6, Dst: client6}.Packet(
				UDP{SrcPort: 80, DstPort: 31337}.Datagram(vip6, client6, katranPayload))
			return eth6(IPv6{NextHeader: ProtoICMPv6, HopLimit: 64, Src: router, Dst: vip6}.Packet(
				ICMPv6{Type: ICMPv6PacketTooBig, Rest: PacketTooBigRest(1280)}.Message(router, vip6, inner)))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 fc00:200::1>fc00:1::1 next 58 hlim 64 len 71 | icmp6 type 2 code 0 mtu 1280 | " +
			"ipv6 fc00:1::1>fc00:2::1 next 17 hlim 64 len 23 | udp 80>31337 len 23",
	},
	{
		"icmp6 echo",
		func() []byte {
			return eth6(IPv6{NextHeader: ProtoICMPv6, HopLimit: 255, Src: client6, Dst: vip6}.Packet(
				ICMPv6{Type: ICMPv6EchoReply, Rest: EchoRest(1, 2)}.Message(client6, vip6, nil)))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 fc00:2::1>fc00:1::1 next 58 hlim 255 len 8 | icmp6 type 129 code 0 id 1 seq 2 len 0",
	},
	{
		"ipv6 extension headers",
		func() []byte {
			udp := UDP{SrcPort: 5, DstPort: 6}.Datagram(client6, vip6, nil)
			return eth6(IPv6{NextHeader: ProtoHopByHop, HopLimit: 64, Src: client6, Dst: vip6}.Packet(slices.Concat(
				IPv6Options(ProtoDstOpts, 0),
				IPv6Options(ProtoIPv6Frag, 7),
				IPv6Fragment(ProtoUDP, 0, false, 0xabcdef),
				udp)))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 fc00:2::1>fc00:1::1 next 0 hlim 64 len 40 | hbh next 60 len 8 | " +
			"dstopts next 44 len 16 | frag next 17 off 0 id 0x00abcdef | udp 5>6 len 8",
	},
	{
		"ipv6 later fragment",
		func() []byte {
			return eth6(IPv6{NextHeader: ProtoIPv6Frag, HopLimit: 64, Src: client6, Dst: vip6}.Packet(
				slices.Concat(IPv6Fragment(ProtoTCP, 185, true, 1), make([]byte, 24))))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 fc00:2::1>fc00:1::1 next 44 hlim 64 len 32 | frag next 6 off 185 MF id 0x00000001 | fragment 24 bytes",
	},
	{
		"ipv4 later fragment",
		func() []byte {
			return eth4(IPv4{ID: 9, FragOffset: 185, TTL: 64, Proto: ProtoUDP, Src: client4, Dst: vip4}.Packet(make([]byte, 12)))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 32 id 9 frag 185 | fragment 12 bytes",
	},
	{
		"ipv4 options",
		func() []byte {
			return eth4(IPv4{TTL: 64, Proto: ProtoUDP, Src: client4, Dst: vip4, Options: []byte{1, 1, 1, 0}}.Packet(
				UDP{SrcPort: 1, DstPort: 2}.Datagram(client4, vip4, []byte("x"))))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 33 ihl 6 | udp 1>2 len 9",
	},
	{
		"vlan",
		func() []byte {
			return Eth{Dst: mac2, Src: mac1, Type: EtherTypeVLAN}.Frame(slices.Concat(VLAN(100, EtherTypeIPv4), udp4Packet()))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | vlan 100 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23",
	},
	{
		"arp",
		func() []byte {
			return Eth{Dst: MAC("ff:ff:ff:ff:ff:ff"), Src: mac1, Type: EtherTypeARP}.Frame(make([]byte, 28))
		},
		"eth 01:00:00:00:00:00>ff:ff:ff:ff:ff:ff | arp 28 bytes",
	},
	{
		"unknown protocols",
		func() []byte {
			return eth4(IPv4{TTL: 64, Proto: 132, Src: client4, Dst: vip4}.Packet(make([]byte, 5)))
		},
		"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 132 ttl 64 len 25 | proto 132 5 bytes",
	},
}

func TestDescribe(t *testing.T) {
	for _, tt := range describeFrames {
		if got := Describe(tt.frame()); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestDescribeMalformed(t *testing.T) {
	udp4 := udp4Packet()
	corrupt := func(b []byte, off int, v byte) []byte {
		b = slices.Clone(b)
		b[off] = v
		return b
	}
	tests := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"empty", nil, "eth truncated (0 of 14 header bytes)"},
		{"bad ipv4 checksum",
			eth4(IPv4{ID: 1, TTL: 64, Proto: ProtoUDP, Src: client4, Dst: vip4, BadChecksum: true}.Packet(udp4[20:])),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 bad-csum 0xad4e | udp 31337>80 len 23"},
		{"bad udp checksum",
			eth4(corrupt(udp4, 27, 0xdf)),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23 bad-csum 0x97df"},
		{"udp without checksum",
			eth4(slices.Concat(udp4[:26], []byte{0, 0}, udp4[28:])),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23 no-csum"},
		{"bad tcp checksum",
			eth6(corrupt(tcp6Packet(), 40+13, TCPAck|TCPPsh)),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 fc00:2::1>fc00:1::1 next 6 hlim 64 len 35 | tcp 31337>80 flags PSH|ACK seq 0 ack 0 win 8192 len 15 bad-csum 0xfd4f"},
		{"ihl too small",
			eth4(IPv4{TTL: 64, Proto: ProtoTCP, Src: client4, Dst: vip4, IHL: 4}.Packet(nil)),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 6 ttl 64 len 20 ihl 4 (bad)"},
		{"total length too long",
			eth4(IPv4{ID: 1, TTL: 64, Proto: ProtoUDP, Src: client4, Dst: vip4, TotalLen: 1500}.Packet(udp4[20:])),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 1500 id 1 truncated (43 of 1500 bytes) | udp 31337>80 len 23"},
		{"ethernet padding",
			eth4(slices.Concat(udp4, make([]byte, 3))),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 +3 trailing bytes | udp 31337>80 len 23"},
		{"ipv6 version in ipv4 ethertype",
			eth4(tcp6Packet()),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 bad version 6"},
		{"ipv6 payload length too short",
			eth6(IPv6{NextHeader: ProtoUDP, HopLimit: 64, Src: client6, Dst: vip6, PayloadLen: 4}.Packet(
				UDP{SrcPort: 1, DstPort: 2}.Datagram(client6, vip6, nil))),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv6 fc00:2::1>fc00:1::1 next 17 hlim 64 len 4 +4 trailing bytes | udp 1>2 truncated (4 of 8 header bytes)"},
		{"first ipv4 fragment skips the l4 checksum",
			eth4(IPv4{ID: 1, MF: true, TTL: 64, Proto: ProtoTCP, Src: client4, Dst: vip4}.Packet(
				TCP{SrcPort: 1, DstPort: 2, Flags: TCPAck}.Segment(client4, vip4, make([]byte, 100))[:28])),
			"eth 01:00:00:00:00:00>02:00:00:00:00:00 | ipv4 192.168.1.1>10.200.1.1 proto 6 ttl 64 len 48 id 1 MF | tcp 1>2 flags ACK seq 0 ack 0 win 0 len 8"},
	}
	for _, tt := range tests {
		if got := Describe(tt.frame); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// TestDescribePrefixes describes every prefix of every sample frame: it must
// not panic, must say "truncated" (all samples but ARP carry a length that
// the prefix falls short of), and must not blame checksums it cannot verify.
func TestDescribePrefixes(t *testing.T) {
	for _, tt := range describeFrames {
		frame := tt.frame()
		for n := range len(frame) {
			got := Describe(frame[:n])
			if tt.name != "arp" && !strings.Contains(got, "truncated") {
				t.Errorf("%s[:%d]: no \"truncated\" in %q", tt.name, n, got)
			}
			if strings.Contains(got, "bad-csum") {
				t.Errorf("%s[:%d]: unverifiable checksum reported bad: %q", tt.name, n, got)
			}
		}
	}
}

// TestDescribeMutations describes every sample frame with every byte set to
// a few interesting values in turn; it must not panic.
func TestDescribeMutations(t *testing.T) {
	values := []byte{0x00, 0x01, 0x04, 0x06, 0x11, 0x29, 0x2c, 0x3a, 0x3c, 0x40, 0x45, 0x4f, 0x60, 0x80, 0xff}
	for _, tt := range describeFrames {
		frame := tt.frame()
		for i := range frame {
			for _, v := range values {
				b := slices.Clone(frame)
				b[i] = v
				_ = Describe(b)
			}
		}
	}
}

func FuzzDescribe(f *testing.F) {
	for _, tt := range describeFrames {
		f.Add(tt.frame())
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		_ = Describe(frame)
	})
}

func TestDiff(t *testing.T) {
	want := Eth{Dst: gw, Src: mac2, Type: EtherTypeIPv4}.Frame(
		IPv4{TTL: 64, Proto: ProtoIPIP, Src: lb4, Dst: real4}.Packet(udp4Packet()))

	if d := Diff(want, slices.Clone(want)); d != "" {
		t.Errorf("Diff of equal frames = %q, want \"\"", d)
	}
	if d := Diff(nil, []byte{}); d != "" {
		t.Errorf("Diff(nil, empty) = %q, want \"\"", d)
	}

	// One byte changed: the outer destination address 10.0.0.3 becomes
	// 245.0.0.3 at offset 30, which also breaks the outer checksum.
	got := slices.Clone(want)
	got[30] = 0xf5
	wantDiff := `got:  eth 02:00:00:00:00:00>00:00:de:ad:be:af | ipv4 172.16.104.123>245.0.0.3 proto 4 ttl 64 len 63 bad-csum 0x5c2d | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23
want: eth 02:00:00:00:00:00>00:00:de:ad:be:af | ipv4 172.16.104.123>10.0.0.3 proto 4 ttl 64 len 63 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23
got 77 bytes, want 77 bytes, bytes differing: 1; first difference at offset 30 (0x001e): got 0xf5, want 0x0a
got  0000  00 00 de ad be af 02 00  00 00 00 00 08 00 45 00
want 0000  00 00 de ad be af 02 00  00 00 00 00 08 00 45 00
got  0010  00 3f 00 00 00 00 40 04  5c 2d ac 10 68 7b f5 00
want 0010  00 3f 00 00 00 00 40 04  5c 2d ac 10 68 7b 0a 00
                                                      ^^
got  0020  00 03 45 00 00 2b 00 01  00 00 40 11 ad 4f c0 a8
want 0020  00 03 45 00 00 2b 00 01  00 00 40 11 ad 4f c0 a8
got  0030  01 01 0a c8 01 01 7a 69  00 50 00 17 97 de 6b 61
want 0030  01 01 0a c8 01 01 7a 69  00 50 00 17 97 de 6b 61
`
	if d := Diff(got, want); d != wantDiff {
		t.Errorf("Diff =\n%s\nwant\n%s", d, wantDiff)
	}

	// A shorter frame: the dump shows "--" past its end, and the
	// difference is where it ends.
	d := Diff(want[:40], want)
	for _, s := range []string{
		"got:  eth 02:00:00:00:00:00>00:00:de:ad:be:af | ipv4 172.16.104.123>10.0.0.3 proto 4 ttl 64 len 63 truncated (26 of 63 bytes) | ipv4 truncated (6 of 20 header bytes)\n",
		"got 40 bytes, want 77 bytes, bytes differing: 37; first difference at offset 40 (0x0028): got ends\n",
		"got  0020  00 03 45 00 00 2b 00 01  -- -- -- -- -- -- -- --\n",
		"want 0040  74 72 61 6e 20 74 65 73  74 20 70 6b 74 -- -- --\n",
		"                                    ^^ ^^ ^^ ^^ ^^ ^^ ^^ ^^\n",
	} {
		if !strings.Contains(d, s) {
			t.Errorf("Diff of a prefix lacks %q:\n%s", s, d)
		}
	}

	// A longer frame.
	d = Diff(slices.Concat(want, []byte{0xee}), want)
	if !strings.Contains(d, "first difference at offset 77 (0x004d): want ends\n") {
		t.Errorf("Diff of a longer frame:\n%s", d)
	}

	// A difference far into a frame dumps only the rows around it.
	big := eth4(IPv4{TTL: 64, Proto: ProtoUDP, Src: client4, Dst: vip4}.Packet(
		UDP{SrcPort: 1, DstPort: 2}.Datagram(client4, vip4, make([]byte, 300))))
	big2 := slices.Clone(big)
	big2[200] ^= 1
	d = Diff(big2, big)
	if strings.Contains(d, "got  0000") || !strings.Contains(d, "got  00a0") || !strings.Contains(d, "got  00e0") || strings.Contains(d, "got  00f0") {
		t.Errorf("Diff window around offset 200:\n%s", d)
	}
	if !strings.Contains(d, "bad-csum") {
		t.Errorf("Diff does not show the broken UDP checksum:\n%s", d)
	}
}
