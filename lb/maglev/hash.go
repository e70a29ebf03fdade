package maglev

import (
	"net/netip"

	"vipcast/internal/hashmix"
)

// Salts that make the offset and skip hashes of a real independent, as the
// paper's two hash functions h1 and h2 must be. They are part of the ring's
// definition: changing them moves nearly every slot on every host.
const (
	saltOffset byte = 0x6f // 'o'
	saltSkip   byte = 0x73 // 's'
)

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// addrHash is the fixed, host-independent hash behind a real's permutation:
// 64-bit FNV-1a over
//
//	salt, length of the address in bytes (4 or 16), As16() (16 bytes), zone
//
// followed by the MurmurHash3 fmix64 finalizer.
//
// The length byte keeps an IPv4 address and its IPv4-mapped IPv6 form, which
// share As16(), on different permutations: they are different reals. The
// zone is hashed for the same reason (netip.Addr equality includes it).
//
// The finalizer is there because FNV-1a ends with a bare multiply: addresses
// that differ only in their last byte, such as a block of consecutive reals,
// would get offsets and skips that are (nearly) linear in that byte, i.e.
// strongly correlated permutations. fmix64 spreads every input bit over the
// whole word before the reductions mod size and mod size-1.
//
// It is written out, not taken from hash/fnv, so that hashing allocates
// nothing; the tests check it against hash/fnv.
func addrHash(a netip.Addr, salt byte) uint64 {
	h := uint64(fnvOffset64)
	h = (h ^ uint64(salt)) * fnvPrime64
	h = (h ^ uint64(a.BitLen()/8)) * fnvPrime64
	b := a.As16()
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime64
	}
	zone := a.Zone()
	for i := 0; i < len(zone); i++ {
		h = (h ^ uint64(zone[i])) * fnvPrime64
	}
	return hashmix.Fmix64(h)
}
