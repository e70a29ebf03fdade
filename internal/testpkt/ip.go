package testpkt

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// EtherType values (IEEE 802 numbers, as assigned by IANA).
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100 // IEEE 802.1Q tag
	EtherTypeIPv6 uint16 = 0x86dd
)

// IP protocol numbers / IPv6 next header values (IANA "Assigned Internet
// Protocol Numbers").
const (
	ProtoHopByHop uint8 = 0  // IPv6 Hop-by-Hop Options (RFC 8200 §4.3)
	ProtoICMP     uint8 = 1  // ICMP for IPv4 (RFC 792)
	ProtoIPIP     uint8 = 4  // IPv4 encapsulation (RFC 2003)
	ProtoTCP      uint8 = 6  // RFC 793 / RFC 9293
	ProtoUDP      uint8 = 17 // RFC 768
	ProtoIPv6     uint8 = 41 // IPv6 encapsulation (RFC 2473)
	ProtoRouting  uint8 = 43 // IPv6 Routing header (RFC 8200 §4.4)
	ProtoIPv6Frag uint8 = 44 // IPv6 Fragment header (RFC 8200 §4.5)
	ProtoICMPv6   uint8 = 58 // RFC 4443
	ProtoNoNext   uint8 = 59 // IPv6 No Next Header (RFC 8200 §4.7)
	ProtoDstOpts  uint8 = 60 // IPv6 Destination Options (RFC 8200 §4.6)
)

const (
	ipv4HeaderLen     = 20
	ipv6HeaderLen     = 40
	ethHeaderLen      = 14
	vlanTagLen        = 4
	maxIPv4TotalLen   = 0xffff
	maxIPv6PayloadLen = 0xffff
	maxFragOffset     = 0x1fff // 13 bits
	maxIPv6FlowLabel  = 0xfffff
	maxIPv4IHL        = 0xf // 4 bits
	ipv4FlagDF        = 0x4000
	ipv4FlagMF        = 0x2000
)

// Eth is an Ethernet II header (IEEE 802.3 with an EtherType).
type Eth struct {
	Dst, Src net.HardwareAddr // 6 bytes each
	Type     uint16           // EtherType of the payload
}

// Frame returns the 14-byte Ethernet header followed by payload:
//
//	destination MAC (6) | source MAC (6) | EtherType (2)
//
// No padding to the 60-byte minimum and no FCS are added: XDP sees neither.
// It panics if Dst or Src is not 6 bytes long.
func (e Eth) Frame(payload []byte) []byte {
	if len(e.Dst) != 6 || len(e.Src) != 6 {
		panic(fmt.Sprintf("testpkt: Ethernet addresses must be 6 bytes, got dst %d and src %d", len(e.Dst), len(e.Src)))
	}
	b := make([]byte, ethHeaderLen, ethHeaderLen+len(payload))
	copy(b[0:6], e.Dst)
	copy(b[6:12], e.Src)
	binary.BigEndian.PutUint16(b[12:14], e.Type)
	return append(b, payload...)
}

// IPv4 is an IPv4 header (RFC 791 §3.1).
//
// All fields are written as given; in particular TTL 0 and ID 0 are written
// as 0. Version is always 4. The fields marked as overrides exist to build
// malformed packets; their zero value means "compute correctly".
type IPv4 struct {
	TOS        uint8  // DSCP and ECN (RFC 2474, RFC 3168)
	ID         uint16 // identification
	DF, MF     bool   // Don't Fragment and More Fragments flags
	FragOffset uint16 // fragment offset in 8-byte units, 13 bits
	TTL        uint8
	Proto      uint8 // protocol of the payload
	Src, Dst   netip.Addr

	// Options are appended after the 20-byte fixed header. Their length
	// must be a multiple of 4 unless IHL is overridden.
	Options []byte

	// IHL overrides the Internet Header Length field (4 bits, in 4-byte
	// units). 0 means 5 + len(Options)/4. The header bytes written are
	// always the 20 fixed bytes plus Options, whatever IHL says.
	IHL uint8
	// TotalLen overrides the Total Length field. 0 means header + payload.
	TotalLen uint16
	// BadChecksum stores the correct header checksum with its lowest bit
	// flipped. That changes one 16-bit word by ±1 and so the one's
	// complement sum by ±1: the header never verifies (a correct
	// checksum of 0x0000 becomes 0x0001, not the equivalent 0xffff).
	BadChecksum bool
}

// Packet returns the IPv4 header followed by payload:
//
//	 0: version (4 bits) = 4 | IHL (4 bits)
//	 1: type of service
//	 2: total length (2)
//	 4: identification (2)
//	 6: flags (3 bits: reserved, DF, MF) | fragment offset (13 bits)
//	 8: time to live
//	 9: protocol
//	10: header checksum (2)
//	12: source address (4)
//	16: destination address (4)
//	20: options
//
// The header checksum is computed over the header bytes written (fixed
// header plus Options) with the checksum field zero.
//
// It panics if Src or Dst is not an IPv4 address, if FragOffset does not fit
// 13 bits, if IHL does not fit 4 bits, if Options is not a multiple of 4
// bytes or is longer than 40 bytes while IHL is not overridden, or if the
// computed total length exceeds 65535.
func (h IPv4) Packet(payload []byte) []byte {
	if !h.Src.Is4() || !h.Dst.Is4() {
		panic(fmt.Sprintf("testpkt: IPv4 header needs IPv4 addresses, got %v and %v", h.Src, h.Dst))
	}
	if h.FragOffset > maxFragOffset {
		panic(fmt.Sprintf("testpkt: IPv4 fragment offset %d does not fit 13 bits", h.FragOffset))
	}
	if h.IHL > maxIPv4IHL {
		panic(fmt.Sprintf("testpkt: IPv4 IHL %d does not fit 4 bits", h.IHL))
	}
	ihl := h.IHL
	if ihl == 0 {
		if len(h.Options)%4 != 0 {
			panic(fmt.Sprintf("testpkt: IPv4 options length %d is not a multiple of 4 (set IHL to build this on purpose)", len(h.Options)))
		}
		n := (ipv4HeaderLen + len(h.Options)) / 4
		if n > maxIPv4IHL {
			panic(fmt.Sprintf("testpkt: IPv4 options length %d exceeds 40 bytes", len(h.Options)))
		}
		ihl = uint8(n)
	}
	hdrLen := ipv4HeaderLen + len(h.Options)
	totalLen := hdrLen + len(payload)
	if totalLen > maxIPv4TotalLen {
		panic(fmt.Sprintf("testpkt: IPv4 total length %d exceeds 65535", totalLen))
	}
	if h.TotalLen != 0 {
		totalLen = int(h.TotalLen)
	}
	flagsFrag := h.FragOffset
	if h.DF {
		flagsFrag |= ipv4FlagDF
	}
	if h.MF {
		flagsFrag |= ipv4FlagMF
	}

	b := make([]byte, ipv4HeaderLen, hdrLen+len(payload))
	b[0] = 4<<4 | ihl
	b[1] = h.TOS
	binary.BigEndian.PutUint16(b[2:4], uint16(totalLen))
	binary.BigEndian.PutUint16(b[4:6], h.ID)
	binary.BigEndian.PutUint16(b[6:8], flagsFrag)
	b[8] = h.TTL
	b[9] = h.Proto
	binary.BigEndian.PutUint16(b[10:12], 0) // checksum, filled in below
	src, dst := h.Src.As4(), h.Dst.As4()
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	b = append(b, h.Options...)

	csum := Checksum(b[:hdrLen])
	if h.BadChecksum {
		csum ^= 1
	}
	binary.BigEndian.PutUint16(b[10:12], csum)
	return append(b, payload...)
}

// IPv6 is an IPv6 fixed header (RFC 8200 §3).
//
// All fields are written as given; in particular HopLimit 0 is written as 0.
// Version is always 6.
type IPv6 struct {
	TrafficClass uint8
	FlowLabel    uint32 // 20 bits
	NextHeader   uint8  // protocol or extension header that follows
	HopLimit     uint8
	Src, Dst     netip.Addr

	// PayloadLen overrides the Payload Length field. 0 means len(payload).
	PayloadLen uint16
}

// Packet returns the 40-byte IPv6 header followed by payload:
//
//	 0: version (4 bits) = 6 | traffic class (8 bits) | flow label (20 bits)
//	 4: payload length (2)
//	 6: next header
//	 7: hop limit
//	 8: source address (16)
//	24: destination address (16)
//
// payload is everything after the fixed header, extension headers included.
//
// It panics if Src or Dst is not an IPv6 address (IPv4-mapped IPv6 addresses
// are accepted), if FlowLabel does not fit 20 bits, or if len(payload)
// exceeds 65535 (jumbograms are not supported).
func (h IPv6) Packet(payload []byte) []byte {
	if !h.Src.Is6() || !h.Dst.Is6() {
		panic(fmt.Sprintf("testpkt: IPv6 header needs IPv6 addresses, got %v and %v", h.Src, h.Dst))
	}
	if h.FlowLabel > maxIPv6FlowLabel {
		panic(fmt.Sprintf("testpkt: IPv6 flow label %#x does not fit 20 bits", h.FlowLabel))
	}
	if len(payload) > maxIPv6PayloadLen {
		panic(fmt.Sprintf("testpkt: IPv6 payload length %d exceeds 65535", len(payload)))
	}
	payloadLen := uint16(len(payload))
	if h.PayloadLen != 0 {
		payloadLen = h.PayloadLen
	}

	b := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(payload))
	binary.BigEndian.PutUint32(b[0:4], 6<<28|uint32(h.TrafficClass)<<20|h.FlowLabel)
	binary.BigEndian.PutUint16(b[4:6], payloadLen)
	b[6] = h.NextHeader
	b[7] = h.HopLimit
	src, dst := h.Src.As16(), h.Dst.As16()
	copy(b[8:24], src[:])
	copy(b[24:40], dst[:])
	return append(b, payload...)
}

// IPv6Fragment returns an 8-byte IPv6 Fragment extension header
// (RFC 8200 §4.5):
//
//	0: next header
//	1: reserved = 0
//	2: fragment offset (13 bits, in 8-byte units) | reserved (2 bits) = 0 | M flag (1 bit)
//	4: identification (4)
//
// It panics if offset does not fit 13 bits.
func IPv6Fragment(next uint8, offset uint16, more bool, id uint32) []byte {
	if offset > maxFragOffset {
		panic(fmt.Sprintf("testpkt: IPv6 fragment offset %d does not fit 13 bits", offset))
	}
	offM := offset << 3
	if more {
		offM |= 1
	}
	b := make([]byte, 8)
	b[0] = next
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:4], offM)
	binary.BigEndian.PutUint32(b[4:8], id)
	return b
}

// IPv6Options returns a Hop-by-Hop (RFC 8200 §4.3) or Destination Options
// (§4.6) extension header whose options area holds at least optsLen bytes,
// all of it padding:
//
//	0: next header
//	1: header extension length = (total length / 8) - 1
//	2: options, filled with PadN options (type 1, length n, n zero bytes;
//	   §4.2), or one Pad1 (a single zero byte) when one byte remains
//
// The total length is the smallest multiple of 8 that is at least
// 2 + optsLen; IPv6Options(next, 0) is 8 bytes with one 6-byte PadN.
// A single PadN covers at most 257 bytes, so longer areas hold several.
//
// It panics if optsLen is negative or the header would exceed 2048 bytes.
func IPv6Options(next uint8, optsLen int) []byte {
	if optsLen < 0 {
		panic(fmt.Sprintf("testpkt: negative IPv6 options length %d", optsLen))
	}
	total := (2 + optsLen + 7) / 8 * 8
	if total > 2048 {
		panic(fmt.Sprintf("testpkt: IPv6 options header of %d bytes exceeds 2048", total))
	}
	b := make([]byte, total)
	b[0] = next
	b[1] = uint8(total/8 - 1)
	for i := 2; i < total; {
		rest := total - i
		switch {
		case rest == 1:
			b[i] = 0 // Pad1
			i++
		default:
			n := min(rest, 2+255) // a PadN option is 2 bytes plus up to 255 data bytes
			b[i] = 1              // PadN
			b[i+1] = uint8(n - 2) // option data length; the data bytes stay zero
			i += n
		}
	}
	return b
}
