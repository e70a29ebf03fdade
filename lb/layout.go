package lb

import (
	"encoding/binary"
	"net"
	"net/netip"

	"vipcast/bpf"
)

// Constants mirrored from bpf/include/vipcast.h; TestLayoutMirrors checks
// them against the compiled object where it can.
const (
	LayoutVersion = 2

	// connWays is CONN_WAYS: entries per connection-table set.
	connWays = 4

	realIPv6      = 0x1
	realDown      = 0x2
	cfgICMPTooBig = 0x1

	// flagAnyPort marks a port-0 VIP in the kernel's copy of its flags.
	flagAnyPort VIPFlags = 0x80000000
)

// connSlot and connSet mirror struct conn_slot and conn_set (vipcast.h),
// which bpf2go cannot generate: the program uses them only inside inner
// maps. New checks their size against the object's table template.
type connSlot struct {
	Flow   uint64 // IPv4: address and ports exactly; IPv6: keyed fingerprint
	VIPNum uint32
	RealID uint32 // 0: free
}

type connSet struct {
	Slot [connWays]connSlot // Slot[0]: the most recently used
}

// binarySize gives the kernel-visible size of a generated type.
func binarySize[T any]() int {
	var v T
	return binary.Size(v)
}

// addrWords stores an address the way the BPF side does: raw network-order
// bytes, IPv4 in the first four.
func addrWords(a netip.Addr) [4]uint32 {
	var raw [16]byte
	if a.Is4() {
		v4 := a.As4()
		copy(raw[:], v4[:])
	} else {
		raw = a.As16()
	}
	var w [4]uint32
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(raw[i*4:])
	}
	return w
}

func vipKey(k VIPKey) bpf.BalancerVipKey {
	return bpf.BalancerVipKey{
		Addr:   addrWords(k.Addr),
		Port:   htons(k.Port),
		Proto:  uint8(k.Proto),
		Family: family(k.Addr),
	}
}

func vipAddrKey(a netip.Addr) bpf.BalancerVipKey {
	return bpf.BalancerVipKey{Addr: addrWords(a), Family: family(a)}
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}

// addrFromWords is addrWords reversed; family says how many bytes count.
func addrFromWords(w [4]uint32, v6 bool) netip.Addr {
	var raw [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(raw[i*4:], w[i])
	}
	if v6 {
		return netip.AddrFrom16(raw)
	}
	return netip.AddrFrom4([4]byte(raw[:4]))
}

// ntohs is htons's inverse (the same swap).
func ntohs(v uint16) uint16 { return htons(v) }

func vipMeta(vs *vipState) bpf.BalancerVipMeta {
	return bpf.BalancerVipMeta{VipNum: vs.num, Flags: uint32(kernelFlags(vs.VIP)), RingSize: vs.RingSize}
}

func kernelFlags(v VIP) VIPFlags {
	if v.Key.Port == 0 {
		return v.Flags | flagAnyPort
	}
	return v.Flags
}

// htons converts a port to the network-order value the BPF side compares.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func isZeroMAC(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}
