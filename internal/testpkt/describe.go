package testpkt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Describe decodes an Ethernet frame into one line with one " | "-separated
// part per layer, for example
//
//	eth 02:00:00:00:00:00>00:00:de:ad:be:af | ipv4 172.16.104.123>10.0.0.3 proto 4 ttl 64 len 63 | ipv4 192.168.1.1>10.200.1.1 proto 17 ttl 64 len 43 id 1 | udp 31337>80 len 23
//
// Addresses and ports read source>destination. Optional fields (IPv4 id,
// tos, flags; IPv6 traffic class and flow label; ...) appear only when
// non-zero. Checksums that can be verified and are wrong are reported as
// "bad-csum 0x....". IP-in-IP, IPv6-in-IPv6, IPv4-in-IPv6, IPv6 extension
// headers, 802.1Q tags and the packets quoted by ICMP and ICMPv6 errors are
// decoded recursively. Short input is reported as "truncated" and never
// causes a panic.
//
// Describe is meant for readable test failures, not for assertions; its
// format may change.
func Describe(frame []byte) string {
	var d describer
	d.eth(frame)
	return strings.Join(d.parts, " | ")
}

// describer accumulates the parts of a Describe line.
type describer struct {
	parts []string
}

func (d *describer) add(format string, args ...any) {
	d.parts = append(d.parts, fmt.Sprintf(format, args...))
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// shortHeader describes a header cut short, with the ports when the first
// four bytes are there (TCP and UDP both start with them).
func shortHeader(name string, b []byte, want int, ports bool) string {
	s := name
	if ports && len(b) >= 4 {
		s += fmt.Sprintf(" %d>%d", be16(b[0:2]), be16(b[2:4]))
	}
	return s + fmt.Sprintf(" truncated (%d of %d header bytes)", len(b), want)
}

// lengthNote compares the length a header claims with the bytes present
// and returns how many bytes belong to the packet, whether all of them are
// present, and a note for the description ("" when they match).
func lengthNote(claimed, present int) (end int, complete bool, note string) {
	switch {
	case claimed > present:
		return present, false, fmt.Sprintf(" truncated (%d of %d bytes)", present, claimed)
	case claimed < present:
		return claimed, true, fmt.Sprintf(" +%d trailing bytes", present-claimed)
	default:
		return claimed, true, ""
	}
}

// pseudoChecksumBad reports whether b, an upper-layer packet carried between
// src and dst with protocol proto, has a checksum that does not verify. It
// reports false when the checksum cannot be verified.
func pseudoChecksumBad(src, dst netip.Addr, proto uint8, b []byte) bool {
	switch {
	case src.Is4() && dst.Is4() && len(b) <= 0xffff:
	case src.Is6() && dst.Is6() && int64(len(b)) <= 0xffffffff:
	default:
		return false
	}
	return PseudoChecksum(src, dst, proto, b) != 0
}

func (d *describer) eth(b []byte) {
	if len(b) < ethHeaderLen {
		d.add("%s", shortHeader("eth", b, ethHeaderLen, false))
		return
	}
	d.add("eth %s>%s", net.HardwareAddr(b[6:12]), net.HardwareAddr(b[0:6]))
	d.ethertype(be16(b[12:14]), b[ethHeaderLen:])
}

func (d *describer) ethertype(typ uint16, b []byte) {
	switch typ {
	case EtherTypeIPv4:
		d.ipv4(b)
	case EtherTypeIPv6:
		d.ipv6(b)
	case EtherTypeVLAN:
		if len(b) < vlanTagLen {
			d.add("%s", shortHeader("vlan", b, vlanTagLen, false))
			return
		}
		tci := be16(b[0:2])
		s := fmt.Sprintf("vlan %d", tci&0x0fff)
		if pcp := tci >> 13; pcp != 0 {
			s += fmt.Sprintf(" pcp %d", pcp)
		}
		if tci&0x1000 != 0 {
			s += " dei"
		}
		d.add("%s", s)
		d.ethertype(be16(b[2:4]), b[vlanTagLen:])
	case EtherTypeARP:
		d.add("arp %d bytes", len(b))
	default:
		d.add("ethertype 0x%04x %d bytes", typ, len(b))
	}
}

func (d *describer) ipv4(b []byte) {
	if len(b) < ipv4HeaderLen {
		d.add("%s", shortHeader("ipv4", b, ipv4HeaderLen, false))
		return
	}
	if v := b[0] >> 4; v != 4 {
		d.add("ipv4 bad version %d", v)
		return
	}
	ihl := int(b[0] & 0x0f)
	tos := b[1]
	totalLen := int(be16(b[2:4]))
	id := be16(b[4:6])
	flagsFrag := be16(b[6:8])
	fragOffset := flagsFrag & maxFragOffset
	ttl, proto := b[8], b[9]
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))

	var s strings.Builder
	fmt.Fprintf(&s, "ipv4 %s>%s proto %d ttl %d len %d", src, dst, proto, ttl, totalLen)
	if id != 0 {
		fmt.Fprintf(&s, " id %d", id)
	}
	if tos != 0 {
		fmt.Fprintf(&s, " tos 0x%02x", tos)
	}
	if flagsFrag&0x8000 != 0 {
		s.WriteString(" reserved-flag")
	}
	if flagsFrag&ipv4FlagDF != 0 {
		s.WriteString(" DF")
	}
	if flagsFrag&ipv4FlagMF != 0 {
		s.WriteString(" MF")
	}
	if fragOffset != 0 {
		fmt.Fprintf(&s, " frag %d", fragOffset)
	}
	hdrLen := ihl * 4
	switch {
	case ihl < 5:
		fmt.Fprintf(&s, " ihl %d (bad)", ihl)
		d.add("%s", s.String())
		return
	case ihl > 5:
		fmt.Fprintf(&s, " ihl %d", ihl)
	}
	if len(b) < hdrLen {
		fmt.Fprintf(&s, " truncated (%d of %d header bytes)", len(b), hdrLen)
		d.add("%s", s.String())
		return
	}
	if Checksum(b[:hdrLen]) != 0 {
		fmt.Fprintf(&s, " bad-csum 0x%04x", be16(b[10:12]))
	}
	if totalLen < hdrLen {
		s.WriteString(" (len < header)")
		d.add("%s", s.String())
		return
	}
	end, complete, note := lengthNote(totalLen, len(b))
	s.WriteString(note)
	d.add("%s", s.String())

	payload := b[hdrLen:end]
	if fragOffset != 0 {
		d.add("fragment %d bytes", len(payload))
		return
	}
	// A first fragment (MF set) holds only part of the upper-layer packet.
	complete = complete && flagsFrag&ipv4FlagMF == 0
	d.upper(proto, src, dst, payload, complete)
}

func (d *describer) ipv6(b []byte) {
	if len(b) < ipv6HeaderLen {
		d.add("%s", shortHeader("ipv6", b, ipv6HeaderLen, false))
		return
	}
	word0 := be32(b[0:4])
	if v := word0 >> 28; v != 6 {
		d.add("ipv6 bad version %d", v)
		return
	}
	tc := uint8(word0 >> 20)
	flow := word0 & maxIPv6FlowLabel
	payloadLen := int(be16(b[4:6]))
	next, hlim := b[6], b[7]
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))

	var s strings.Builder
	fmt.Fprintf(&s, "ipv6 %s>%s next %d hlim %d len %d", src, dst, next, hlim, payloadLen)
	if tc != 0 {
		fmt.Fprintf(&s, " tc 0x%02x", tc)
	}
	if flow != 0 {
		fmt.Fprintf(&s, " flow 0x%05x", flow)
	}
	end, complete, note := lengthNote(ipv6HeaderLen+payloadLen, len(b))
	s.WriteString(note)
	d.add("%s", s.String())

	payload := b[ipv6HeaderLen:end]
	// Each extension header is at least 8 bytes long, so the loop ends.
	for {
		switch next {
		case ProtoHopByHop, ProtoDstOpts, ProtoRouting:
			name := "hbh"
			switch next {
			case ProtoDstOpts:
				name = "dstopts"
			case ProtoRouting:
				name = "routing"
			}
			if len(payload) < 8 {
				d.add("%s", shortHeader(name, payload, 8, false))
				return
			}
			n := (int(payload[1]) + 1) * 8
			if len(payload) < n {
				d.add("%s next %d len %d truncated (%d of %d bytes)", name, payload[0], n, len(payload), n)
				return
			}
			if next == ProtoRouting {
				d.add("%s next %d len %d type %d segleft %d", name, payload[0], n, payload[2], payload[3])
			} else {
				d.add("%s next %d len %d", name, payload[0], n)
			}
			next = payload[0]
			payload = payload[n:]
		case ProtoIPv6Frag:
			if len(payload) < 8 {
				d.add("%s", shortHeader("frag", payload, 8, false))
				return
			}
			offM := be16(payload[2:4])
			offset, more := offM>>3, offM&1 != 0
			var f strings.Builder
			fmt.Fprintf(&f, "frag next %d off %d", payload[0], offset)
			if more {
				f.WriteString(" MF")
			}
			if res := offM & 0x6; res != 0 || payload[1] != 0 {
				f.WriteString(" reserved-bits")
			}
			fmt.Fprintf(&f, " id 0x%08x", be32(payload[4:8]))
			d.add("%s", f.String())
			next = payload[0]
			payload = payload[8:]
			if offset != 0 {
				d.add("fragment %d bytes", len(payload))
				return
			}
			complete = complete && !more
		default:
			d.upper(next, src, dst, payload, complete)
			return
		}
	}
}

// upper describes the upper-layer packet b carried with protocol proto
// between src and dst. complete says whether b holds the whole packet, so
// that its checksum can be verified.
func (d *describer) upper(proto uint8, src, dst netip.Addr, b []byte, complete bool) {
	switch proto {
	case ProtoIPIP:
		d.ipv4(b)
	case ProtoIPv6:
		d.ipv6(b)
	case ProtoTCP:
		d.tcp(src, dst, b, complete)
	case ProtoUDP:
		d.udp(src, dst, b, complete)
	case ProtoICMP:
		d.icmp4(b, complete)
	case ProtoICMPv6:
		d.icmp6(src, dst, b, complete)
	case ProtoNoNext:
		d.add("no-next-header %d bytes", len(b))
	default:
		d.add("proto %d %d bytes", proto, len(b))
	}
}

// tcpFlagNames lists the TCP flags in bit order, lowest first.
var tcpFlagNames = []struct {
	bit  uint8
	name string
}{
	{TCPFin, "FIN"}, {TCPSyn, "SYN"}, {TCPRst, "RST"}, {TCPPsh, "PSH"},
	{TCPAck, "ACK"}, {TCPUrg, "URG"}, {TCPEce, "ECE"}, {TCPCwr, "CWR"},
}

func tcpFlags(f uint8) string {
	var names []string
	for _, n := range tcpFlagNames {
		if f&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

func (d *describer) tcp(src, dst netip.Addr, b []byte, complete bool) {
	if len(b) < tcpHeaderLen {
		d.add("%s", shortHeader("tcp", b, tcpHeaderLen, true))
		return
	}
	var s strings.Builder
	fmt.Fprintf(&s, "tcp %d>%d flags %s seq %d ack %d win %d",
		be16(b[0:2]), be16(b[2:4]), tcpFlags(b[13]), be32(b[4:8]), be32(b[8:12]), be16(b[14:16]))
	doff := int(b[12] >> 4)
	switch hdrLen := doff * 4; {
	case doff < 5:
		fmt.Fprintf(&s, " doff %d (bad)", doff)
	case hdrLen > len(b):
		fmt.Fprintf(&s, " doff %d truncated (%d of %d header bytes)", doff, len(b), hdrLen)
		complete = false
	default:
		fmt.Fprintf(&s, " len %d", len(b)-hdrLen)
		if doff != 5 {
			fmt.Fprintf(&s, " doff %d", doff)
		}
	}
	if res := b[12] & 0x0f; res != 0 {
		fmt.Fprintf(&s, " reserved 0x%x", res)
	}
	if urg := be16(b[18:20]); urg != 0 {
		fmt.Fprintf(&s, " urg %d", urg)
	}
	if complete && pseudoChecksumBad(src, dst, ProtoTCP, b) {
		fmt.Fprintf(&s, " bad-csum 0x%04x", be16(b[16:18]))
	}
	d.add("%s", s.String())
}

func (d *describer) udp(src, dst netip.Addr, b []byte, complete bool) {
	if len(b) < udpHeaderLen {
		d.add("%s", shortHeader("udp", b, udpHeaderLen, true))
		return
	}
	var s strings.Builder
	length := int(be16(b[4:6]))
	csum := be16(b[6:8])
	fmt.Fprintf(&s, "udp %d>%d len %d", be16(b[0:2]), be16(b[2:4]), length)
	if length < udpHeaderLen {
		s.WriteString(" (bad)")
		complete = false
	} else {
		end, whole, note := lengthNote(length, len(b))
		s.WriteString(note)
		b = b[:end]
		complete = complete && whole
	}
	if csum == 0 {
		s.WriteString(" no-csum")
	} else if complete && pseudoChecksumBad(src, dst, ProtoUDP, b) {
		fmt.Fprintf(&s, " bad-csum 0x%04x", csum)
	}
	d.add("%s", s.String())
}

func (d *describer) icmp4(b []byte, complete bool) {
	if len(b) < icmpHeaderLen {
		d.add("%s", shortHeader("icmp", b, icmpHeaderLen, false))
		return
	}
	typ, code := b[0], b[1]
	var s strings.Builder
	fmt.Fprintf(&s, "icmp type %d code %d", typ, code)
	quotes := false
	switch typ {
	case ICMPEchoReply, ICMPEchoRequest:
		fmt.Fprintf(&s, " id %d seq %d len %d", be16(b[4:6]), be16(b[6:8]), len(b)-icmpHeaderLen)
	case ICMPDestUnreach:
		if code == ICMPCodeFragNeeded {
			fmt.Fprintf(&s, " mtu %d", be16(b[6:8]))
		}
		quotes = true
	case 5: // redirect
		fmt.Fprintf(&s, " gateway %s", netip.AddrFrom4([4]byte(b[4:8])))
		quotes = true
	case ICMPParamProblem:
		fmt.Fprintf(&s, " pointer %d", b[4])
		quotes = true
	case 4, ICMPTimeExceeded: // source quench, time exceeded
		quotes = true
	default:
		fmt.Fprintf(&s, " len %d", len(b)-icmpHeaderLen)
	}
	if complete && Checksum(b) != 0 {
		fmt.Fprintf(&s, " bad-csum 0x%04x", be16(b[2:4]))
	}
	d.add("%s", s.String())
	if quotes && len(b) > icmpHeaderLen {
		d.ipv4(b[icmpHeaderLen:])
	}
}

func (d *describer) icmp6(src, dst netip.Addr, b []byte, complete bool) {
	if len(b) < icmpHeaderLen {
		d.add("%s", shortHeader("icmp6", b, icmpHeaderLen, false))
		return
	}
	typ, code := b[0], b[1]
	var s strings.Builder
	fmt.Fprintf(&s, "icmp6 type %d code %d", typ, code)
	quotes := false
	switch typ {
	case ICMPv6EchoRequest, ICMPv6EchoReply:
		fmt.Fprintf(&s, " id %d seq %d len %d", be16(b[4:6]), be16(b[6:8]), len(b)-icmpHeaderLen)
	case ICMPv6PacketTooBig:
		fmt.Fprintf(&s, " mtu %d", be32(b[4:8]))
		quotes = true
	case ICMPv6ParamProblem:
		fmt.Fprintf(&s, " pointer %d", be32(b[4:8]))
		quotes = true
	case ICMPv6DestUnreach, ICMPv6TimeExceeded:
		quotes = true
	default:
		fmt.Fprintf(&s, " len %d", len(b)-icmpHeaderLen)
	}
	// The ICMPv6 checksum includes the IPv6 pseudo-header; it cannot be
	// verified when the message is carried in IPv4.
	if complete && src.Is6() && pseudoChecksumBad(src, dst, ProtoICMPv6, b) {
		fmt.Fprintf(&s, " bad-csum 0x%04x", be16(b[2:4]))
	}
	d.add("%s", s.String())
	if quotes && len(b) > icmpHeaderLen {
		d.ipv6(b[icmpHeaderLen:])
	}
}

// Diff returns "" when got and want are equal. Otherwise it returns a
// multi-line report: both frames decoded by Describe, their lengths, the
// first differing offset, and a hex dump of both around that offset with
// differing bytes marked.
func Diff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	first := 0
	for first < len(got) && first < len(want) && got[first] == want[first] {
		first++
	}
	differing := 0
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			differing++
		}
	}

	var s strings.Builder
	fmt.Fprintf(&s, "got:  %s\n", Describe(got))
	fmt.Fprintf(&s, "want: %s\n", Describe(want))
	fmt.Fprintf(&s, "got %d bytes, want %d bytes, bytes differing: %d; first difference at offset %d (0x%04x): ",
		len(got), len(want), differing, first, first)
	switch {
	case first < len(got) && first < len(want):
		fmt.Fprintf(&s, "got 0x%02x, want 0x%02x\n", got[first], want[first])
	case first == len(got):
		s.WriteString("got ends\n")
	default:
		s.WriteString("want ends\n")
	}

	// Hex dump of two 16-byte rows before the difference, its row and two
	// after, as far as either input reaches. "--" is a byte past the end.
	const rowLen = 16
	firstRow := max(0, first/rowLen-2) * rowLen
	endRow := min(first/rowLen+3, (max(len(got), len(want))+rowLen-1)/rowLen) * rowLen
	for row := firstRow; row < endRow; row += rowLen {
		fmt.Fprintf(&s, "got  %04x %s\n", row, hexRow(got, row, rowLen))
		fmt.Fprintf(&s, "want %04x %s\n", row, hexRow(want, row, rowLen))
		var marks strings.Builder
		anyMark := false
		for i := row; i < row+rowLen; i++ {
			if i == row+rowLen/2 {
				marks.WriteByte(' ')
			}
			differs := (i < len(got) || i < len(want)) &&
				(i >= len(got) || i >= len(want) || got[i] != want[i])
			if differs {
				marks.WriteString(" ^^")
				anyMark = true
			} else {
				marks.WriteString("   ")
			}
		}
		if anyMark {
			fmt.Fprintf(&s, "          %s\n", strings.TrimRight(marks.String(), " "))
		}
	}
	return s.String()
}

// hexRow formats b[row:row+n] as space-separated hex bytes with an extra
// space in the middle, showing "--" past the end of b.
func hexRow(b []byte, row, n int) string {
	var s strings.Builder
	for i := row; i < row+n; i++ {
		if i == row+n/2 {
			s.WriteByte(' ')
		}
		if i < len(b) {
			fmt.Fprintf(&s, " %02x", b[i])
		} else {
			s.WriteString(" --")
		}
	}
	return s.String()
}
