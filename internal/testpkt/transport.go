package testpkt

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// TCP flag bits, as found in byte 13 of the TCP header (RFC 9293 §3.1,
// RFC 3168 §23.2 for ECE and CWR).
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

// ICMP for IPv4 message types (RFC 792) and the codes used here.
const (
	ICMPEchoReply      uint8 = 0
	ICMPDestUnreach    uint8 = 3
	ICMPEchoRequest    uint8 = 8
	ICMPTimeExceeded   uint8 = 11
	ICMPParamProblem   uint8 = 12
	ICMPCodeFragNeeded uint8 = 4 // with ICMPDestUnreach (RFC 1191)
)

// ICMPv6 message types (RFC 4443).
const (
	ICMPv6DestUnreach  uint8 = 1
	ICMPv6PacketTooBig uint8 = 2
	ICMPv6TimeExceeded uint8 = 3
	ICMPv6ParamProblem uint8 = 4
	ICMPv6EchoRequest  uint8 = 128
	ICMPv6EchoReply    uint8 = 129
)

const (
	tcpHeaderLen  = 20
	udpHeaderLen  = 8
	icmpHeaderLen = 8
)

// TCP is a TCP header without options (RFC 9293 §3.1).
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8 // TCPFin | TCPSyn | ...
	Window           uint16
}

// Segment returns the 20-byte TCP header followed by payload:
//
//	 0: source port (2)
//	 2: destination port (2)
//	 4: sequence number (4)
//	 8: acknowledgment number (4)
//	12: data offset (4 bits) = 5 | reserved (4 bits) = 0
//	13: flags (CWR ECE URG ACK PSH RST SYN FIN)
//	14: window (2)
//	16: checksum (2)
//	18: urgent pointer (2) = 0
//
// The checksum covers the pseudo-header for src and dst (see PseudoHeader)
// and the whole segment. It panics if src and dst are not both IPv4 or both
// IPv6.
func (t TCP) Segment(src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, tcpHeaderLen, tcpHeaderLen+len(payload))
	binary.BigEndian.PutUint16(b[0:2], t.SrcPort)
	binary.BigEndian.PutUint16(b[2:4], t.DstPort)
	binary.BigEndian.PutUint32(b[4:8], t.Seq)
	binary.BigEndian.PutUint32(b[8:12], t.Ack)
	b[12] = (tcpHeaderLen / 4) << 4
	b[13] = t.Flags
	binary.BigEndian.PutUint16(b[14:16], t.Window)
	binary.BigEndian.PutUint16(b[16:18], 0) // checksum, filled in below
	binary.BigEndian.PutUint16(b[18:20], 0) // urgent pointer
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[16:18], PseudoChecksum(src, dst, ProtoTCP, b))
	return b
}

// UDP is a UDP header (RFC 768).
type UDP struct {
	SrcPort, DstPort uint16
}

// Datagram returns the 8-byte UDP header followed by payload:
//
//	0: source port (2)
//	2: destination port (2)
//	4: length (2) = 8 + len(payload)
//	6: checksum (2)
//
// The checksum covers the pseudo-header for src and dst (see PseudoHeader)
// and the whole datagram. A computed checksum of 0 is sent as 0xffff
// (RFC 768; RFC 8200 §8.1 for IPv6), since 0 means "no checksum".
//
// It panics if src and dst are not both IPv4 or both IPv6, or if the length
// exceeds 65535.
func (u UDP) Datagram(src, dst netip.Addr, payload []byte) []byte {
	length := udpHeaderLen + len(payload)
	if length > 0xffff {
		panic(fmt.Sprintf("testpkt: UDP length %d exceeds 65535", length))
	}
	b := make([]byte, udpHeaderLen, length)
	binary.BigEndian.PutUint16(b[0:2], u.SrcPort)
	binary.BigEndian.PutUint16(b[2:4], u.DstPort)
	binary.BigEndian.PutUint16(b[4:6], uint16(length))
	binary.BigEndian.PutUint16(b[6:8], 0) // checksum, filled in below
	b = append(b, payload...)
	csum := PseudoChecksum(src, dst, ProtoUDP, b)
	if csum == 0 {
		csum = 0xffff
	}
	binary.BigEndian.PutUint16(b[6:8], csum)
	return b
}

// ICMPv4 is an ICMP for IPv4 header (RFC 792).
type ICMPv4 struct {
	Type, Code uint8
	// Rest is the second 32-bit word: identifier and sequence number for
	// echo (see EchoRest), unused and next-hop MTU for "fragmentation
	// needed" (see FragNeededRest, RFC 1191), or zero.
	Rest [4]byte
}

// Message returns the 8-byte ICMP header followed by payload:
//
//	0: type
//	1: code
//	2: checksum (2)
//	4: rest of header (4)
//
// The checksum covers the whole message and no pseudo-header. For error
// messages, payload is the quoted original IP header and leading data.
func (m ICMPv4) Message(payload []byte) []byte {
	b := make([]byte, icmpHeaderLen, icmpHeaderLen+len(payload))
	b[0] = m.Type
	b[1] = m.Code
	binary.BigEndian.PutUint16(b[2:4], 0) // checksum, filled in below
	copy(b[4:8], m.Rest[:])
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[2:4], Checksum(b))
	return b
}

// ICMPv6 is an ICMPv6 header (RFC 4443 §2.1).
type ICMPv6 struct {
	Type, Code uint8
	// Rest is the second 32-bit word: identifier and sequence number for
	// echo (see EchoRest), the MTU for Packet Too Big (see
	// PacketTooBigRest), the pointer for Parameter Problem, or zero.
	Rest [4]byte
}

// Message returns the 8-byte ICMPv6 header followed by payload, with the
// same layout as ICMPv4.Message. The checksum covers the IPv6 pseudo-header
// for src and dst with next header 58 (RFC 4443 §2.3) and the whole
// message. It panics if src and dst are not both IPv6 addresses.
func (m ICMPv6) Message(src, dst netip.Addr, payload []byte) []byte {
	if !src.Is6() || !dst.Is6() {
		panic(fmt.Sprintf("testpkt: ICMPv6 checksum needs IPv6 addresses, got %v and %v", src, dst))
	}
	b := make([]byte, icmpHeaderLen, icmpHeaderLen+len(payload))
	b[0] = m.Type
	b[1] = m.Code
	binary.BigEndian.PutUint16(b[2:4], 0) // checksum, filled in below
	copy(b[4:8], m.Rest[:])
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[2:4], PseudoChecksum(src, dst, ProtoICMPv6, b))
	return b
}

// EchoRest returns the rest-of-header word of an ICMP or ICMPv6 echo
// request or reply: identifier (2) | sequence number (2).
func EchoRest(id, seq uint16) [4]byte {
	var r [4]byte
	binary.BigEndian.PutUint16(r[0:2], id)
	binary.BigEndian.PutUint16(r[2:4], seq)
	return r
}

// FragNeededRest returns the rest-of-header word of an ICMP "fragmentation
// needed" message (RFC 1191 §4): unused (2) = 0 | next-hop MTU (2).
func FragNeededRest(mtu uint16) [4]byte {
	var r [4]byte
	binary.BigEndian.PutUint16(r[2:4], mtu)
	return r
}

// PacketTooBigRest returns the rest-of-header word of an ICMPv6 Packet Too
// Big message (RFC 4443 §3.2): MTU (4).
func PacketTooBigRest(mtu uint32) [4]byte {
	var r [4]byte
	binary.BigEndian.PutUint32(r[0:4], mtu)
	return r
}
