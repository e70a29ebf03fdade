package testpkt

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Checksum returns the Internet checksum (RFC 1071) of b: the one's
// complement of the one's complement sum of b taken as big-endian 16-bit
// words. An odd trailing byte is padded on the right with a zero byte.
//
// The result is the value to store in a checksum field that was zero while
// summing. Summing data that already contains a correct checksum yields 0.
func Checksum(b []byte) uint16 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1]) << 8
	}
	// Fold the carries back in (end-around carry).
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// PseudoHeader returns the pseudo-header that TCP, UDP and ICMPv6 checksums
// cover, for an upper-layer packet of length bytes carried with protocol
// (next header) proto between src and dst.
//
// For IPv4 addresses (RFC 768, RFC 793 §3.1), 12 bytes:
//
//	source address (4) | destination address (4) | zero (1) | protocol (1) | length (2)
//
// For IPv6 addresses (RFC 8200 §8.1), 40 bytes:
//
//	source address (16) | destination address (16) | length (4) | zero (3) | next header (1)
//
// It panics if src and dst are not both IPv4 or both IPv6 (an IPv4-mapped
// IPv6 address counts as IPv6), or if length does not fit the length field.
func PseudoHeader(src, dst netip.Addr, proto uint8, length int) []byte {
	switch {
	case src.Is4() && dst.Is4():
		if length < 0 || length > 0xffff {
			panic(fmt.Sprintf("testpkt: IPv4 pseudo-header length %d out of range", length))
		}
		ph := make([]byte, 12)
		s, d := src.As4(), dst.As4()
		copy(ph[0:4], s[:])
		copy(ph[4:8], d[:])
		ph[8] = 0
		ph[9] = proto
		binary.BigEndian.PutUint16(ph[10:12], uint16(length))
		return ph
	case src.Is6() && dst.Is6():
		if length < 0 || int64(length) > 0xffffffff {
			panic(fmt.Sprintf("testpkt: IPv6 pseudo-header length %d out of range", length))
		}
		ph := make([]byte, 40)
		s, d := src.As16(), dst.As16()
		copy(ph[0:16], s[:])
		copy(ph[16:32], d[:])
		binary.BigEndian.PutUint32(ph[32:36], uint32(length))
		ph[36], ph[37], ph[38] = 0, 0, 0
		ph[39] = proto
		return ph
	default:
		panic(fmt.Sprintf("testpkt: pseudo-header needs two IPv4 or two IPv6 addresses, got %v and %v", src, dst))
	}
}

// PseudoChecksum returns the Internet checksum of the pseudo-header for
// (src, dst, proto, len(payload)) followed by payload, where payload is the
// whole upper-layer packet (header and data). It is the value to store in
// the TCP, UDP or ICMPv6 checksum field while that field is zero in
// payload; over a payload with a correct checksum it returns 0.
//
// It panics under the same conditions as PseudoHeader.
func PseudoChecksum(src, dst netip.Addr, proto uint8, payload []byte) uint16 {
	ph := PseudoHeader(src, dst, proto, len(payload))
	// The pseudo-header has an even length (12 or 40), so concatenating
	// keeps every 16-bit word of payload aligned.
	b := make([]byte, 0, len(ph)+len(payload))
	b = append(b, ph...)
	b = append(b, payload...)
	return Checksum(b)
}
