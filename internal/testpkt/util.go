package testpkt

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// MAC parses a 6-byte MAC address such as "02:00:00:00:00:01". It panics
// on anything else; it is meant for literals in tests.
func MAC(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(fmt.Sprintf("testpkt: bad MAC literal %q: %v", s, err))
	}
	if len(hw) != 6 {
		panic(fmt.Sprintf("testpkt: MAC literal %q is %d bytes, want 6", s, len(hw)))
	}
	return hw
}

// Addr parses an IPv4 or IPv6 address such as "10.0.0.1" or "fc00::1". It
// panics on a bad literal or one with a zone; it is meant for literals in
// tests.
func Addr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		panic(fmt.Sprintf("testpkt: bad address literal %q: %v", s, err))
	}
	if a.Zone() != "" {
		panic(fmt.Sprintf("testpkt: address literal %q has a zone", s))
	}
	return a
}

// VLAN returns an IEEE 802.1Q tag for use as the payload of an Eth with
// Type EtherTypeVLAN, followed by the tagged payload's EtherType:
//
//	0: PCP (3 bits) = 0 | DEI (1 bit) = 0 | VLAN ID (12 bits)
//	2: EtherType of the tagged payload (2)
//
// It panics if id does not fit 12 bits.
func VLAN(id uint16, next uint16) []byte {
	if id > 0xfff {
		panic(fmt.Sprintf("testpkt: VLAN ID %d does not fit 12 bits", id))
	}
	b := make([]byte, vlanTagLen)
	binary.BigEndian.PutUint16(b[0:2], id)
	binary.BigEndian.PutUint16(b[2:4], next)
	return b
}
