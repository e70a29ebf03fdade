package lb

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"

	"vipcast/internal/hashmix"
	"vipcast/lb/maglev"
)

// hashSeed and the function below mirror bpf/include/common.h: lookup3's
// hashword() (Bob Jenkins, 2006, public domain) over five 32-bit words. The
// words are the raw packet bytes as the little-endian BPF target loads them.
// TestFlowHashMatchesKernel keeps the two in step.
const hashSeed = 0x76697063

func hashWords(w [5]uint32) uint32 {
	// The initial value wraps in 32 bits, as it does in C.
	init := uint32(0xdeadbeef)
	init += 5<<2 + hashSeed
	a := init
	b, c := a, a
	a += w[0]
	b += w[1]
	c += w[2]
	// mix
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	a += w[3]
	b += w[4]
	// final
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

// Flow is a client's packet as the ring sees it.
type Flow struct {
	Src   netip.AddrPort
	Dst   netip.AddrPort
	Proto Proto
}

// flowHash is the ring position hash of a flow under a VIP's flags.
func flowHash(f Flow, flags VIPFlags) uint32 { return hashWords(flowWords(f, flags)) }

// flowWords are the words both of the program's flow hashes read: the
// client address and ports as the VIP's flags leave them.
func flowWords(f Flow, flags VIPFlags) [5]uint32 {
	src := f.Src.Addr()
	sport, dport := f.Src.Port(), f.Dst.Port()
	switch {
	case flags&FlagDportOnly != 0:
		src = netip.IPv6Unspecified()
		if f.Src.Addr().Is4() {
			src = netip.IPv4Unspecified()
		}
		sport = dport
	default:
		if flags&FlagNoSrcPort != 0 {
			sport = 0
		}
		if flags&flagAnyPort != 0 {
			dport = 0
		}
	}
	le := func(port uint16) uint32 { return uint32(bits.ReverseBytes16(port)) }
	var raw [16]byte
	if src.Is4() {
		v4 := src.As4()
		copy(raw[:], v4[:])
	} else {
		raw = src.As16()
	}
	var w [5]uint32
	for i := range 4 {
		w[i] = binary.LittleEndian.Uint32(raw[i*4:])
	}
	w[4] = le(sport)<<16 | le(dport)
	return w
}

// RealFor says which real a new flow of a VIP would be sent to: the ring the
// kernel holds, computed again in Go. It is how an operator (and a test)
// checks that two hosts place a flow alike.
func (b *Balancer) RealFor(k VIPKey, f Flow) (netip.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.vips[k]
	if !ok {
		return netip.Addr{}, fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	members, byID := ringMembers(vs)
	ring, err := maglev.Build(members, vs.RingSize)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vip %s: build ring: %w", k, err)
	}
	if ring == nil {
		return netip.Addr{}, fmt.Errorf("vip %s: no real is up: %w", k, ErrNotFound)
	}
	return byID[ring[ringPos(flowHash(f, kernelFlags(vs.VIP)), vs.RingSize)]], nil
}

// ringMembers lists the reals that take new flows, and their addresses by id.
func ringMembers(vs *vipState) ([]maglev.Real, map[uint32]netip.Addr) {
	members := make([]maglev.Real, 0, len(vs.reals))
	byID := make(map[uint32]netip.Addr, len(vs.reals))
	for _, rs := range vs.reals {
		if rs.State == Up {
			members = append(members, maglev.Real{Addr: rs.Addr, ID: rs.id, Weight: rs.Weight})
			byID[rs.id] = rs.Addr
		}
	}
	return members, byID
}

// nhMix mirrors nh_mix in bpf/balancer.c: NH (UMAC's hash) over a flow's
// words and VIP number under six key words, then MurmurHash3's finaliser.
func nhMix(w [5]uint32, vipNum uint32, k []uint32) uint64 {
	pair := func(x, y uint32) uint64 { return uint64(x) * uint64(y) }
	return hashmix.Fmix64(pair(w[0]+k[0], w[4]+k[1]) + pair(w[1]+k[2], w[2]+k[3]) + pair(w[3]+k[4], vipNum+k[5]))
}

// connPlace mirrors conn_place in bpf/balancer.c: the set of a per-CPU
// connection table of sets sets, keyed with key, that holds a flow (its
// flowWords, IPv6 or not) of VIP number vipNum, and the entry the flow is
// known by (RealID 0). The tests of conntable_test.go keep the two in step.
func connPlace(w [5]uint32, v6 bool, vipNum uint32, key [12]uint32, sets uint32) (uint32, connSlot) {
	h := nhMix(w, vipNum, key[:6])
	idx := uint32((h >> 32) * uint64(sets) >> 32)
	flow := uint64(w[0])<<32 | uint64(w[4])
	if v6 {
		flow = nhMix(w, vipNum, key[6:])
	}
	return idx, connSlot{Flow: flow, VIPNum: vipNum}
}

// ringPos mirrors ring_pick in bpf/balancer.c: the ring slot of a flow hash,
// by multiply-shift onto [0, size).
func ringPos(hash uint32, size uint32) uint32 {
	return uint32(uint64(hash) * uint64(size) >> 32)
}
