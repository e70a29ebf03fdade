// Package hashmix holds the bit mixer vipcast's hashes share: MurmurHash3's
// 64-bit finalizer (Austin Appleby, public domain). It is a bijection that
// spreads every input bit over the whole word, so it adds no collisions.
// The balancer program (bpf/balancer.c, nh_mix) runs the same steps.
package hashmix

// Fmix64 is MurmurHash3's fmix64.
func Fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
