// Package maglev builds the Maglev consistent-hashing lookup table of one
// VIP: a ring of size slots, each holding the ID of a real, which the data
// plane indexes with (flowhash × size) >> 32.
//
// The construction follows section 3.4 of D. E. Eisenbud et al., "Maglev: A
// Fast and Reliable Software Network Load Balancer", NSDI 2016: every real
// owns a permutation of the slots, (offset + j*skip) mod size, and the reals
// take turns claiming the next slot of their own permutation that is still
// free. Because a real's permutation depends only on its own address, adding
// or removing one real leaves the others' preferences unchanged, so most
// slots keep their real.
//
// The paper fills in strict round robin, which gives equal shares. Weights
// change only how many turns each real gets and when: its turn count is its
// weight's share of the slots (largest remainder, and at least one for any
// non-zero weight), and its turns are spread evenly over the fill. A real
// still claims slots exactly as in the paper, and with equal weights the
// table is the paper's, slot for slot.
//
// The ring is a pure function of the set of (Addr, Weight) pairs, written out
// through ID, so two hosts or two daemon generations build the same ring and
// flows keep their real across restarts and across load balancers. Reals are
// ordered by netip.Addr.Compare, and a real's offset and skip are
// h1 % size and h2 % (size-1) + 1, where h1 and h2 are 64-bit FNV-1a over
// a salt byte ('o' for h1, 's' for h2), the address length in bytes (4 or
// 16), As16() and the zone, each finalized with MurmurHash3's fmix64.
package maglev

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// DefaultSize is the default ring size (prime).
//
// With 65537 slots a VIP with a few hundred reals still gives each real
// hundreds of slots, which keeps shares within a fraction of a percent of
// the weights, while the table (256 KiB) stays cheap to rebuild and write.
const DefaultSize = 65537

// MaxSize bounds the ring size accepted by Build, and so its memory and
// time: the largest valid size, the prime 16777213 (2^24 - 3), already
// means a 64 MiB table that takes seconds to fill.
const MaxSize = 1 << 24

// minSize is the smallest accepted ring size: with size 2 the skip is forced
// to 1, so every real walks the slots in the same order and the permutations
// stop being independent.
const minSize = 3

// Real is one member of the ring.
type Real struct {
	Addr   netip.Addr // identity of the real; the ring is a function of the (Addr, Weight) set only
	ID     uint32     // value written into the slots for this real (host-local id; never 0)
	Weight uint32     // 0 = no slots (no new flows)
}

// The sentinels are unexported to keep the API to Build and ValidSize;
// errors wrap them with %w so that exporting them later is enough for
// callers to match with errors.Is, as the tests already do.
var (
	errInvalidSize   = errors.New("invalid ring size")
	errInvalidAddr   = errors.New("invalid real address")
	errZeroID        = errors.New("ID 0 is reserved")
	errDuplicateAddr = errors.New("duplicate real address")
	errDuplicateID   = errors.New("duplicate real ID")
	errTooManyReals  = errors.New("more weighted reals than slots")
)

// ValidSize reports an error (naming the value) unless size is a prime in
// [3, MaxSize].
//
// Primality is what makes every skip in [1, size-1] coprime with size, so
// each real's permutation visits every slot exactly once.
func ValidSize(size uint32) error {
	if size < minSize || size > MaxSize {
		return fmt.Errorf("maglev: %w %d: outside [%d, %d]", errInvalidSize, size, minSize, MaxSize)
	}
	if !isPrime(size) {
		return fmt.Errorf("maglev: %w %d: not prime", errInvalidSize, size)
	}
	return nil
}

// isPrime uses trial division: sizes are below 2^24, so at most ~2048 odd
// divisors are tried, and it runs once per Build.
func isPrime(n uint32) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint32(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// member is a weighted real during a build.
type member struct {
	id     uint32
	weight uint32
	quota  uint32 // slots this real ends up with
	pos    uint32 // next candidate slot in the real's permutation
	skip   uint32
}

// Build returns a table of `size` slots, each holding the ID of a real.
// If no real has weight > 0 it returns (nil, nil): an empty ring.
//
// Besides an invalid size it rejects a zero (invalid) Addr, ID 0 (the data
// plane could not tell it from an unfilled slot), a duplicate Addr, a
// duplicate ID (the ring could not be mapped back to reals) and more
// weighted reals than slots (one of them would get no slot despite a
// non-zero weight). Input is validated before the empty-ring shortcut, so
// a bad configuration never passes as "no reals".
func Build(reals []Real, size uint32) ([]uint32, error) {
	if err := ValidSize(size); err != nil {
		return nil, err
	}
	sorted := slices.Clone(reals)
	slices.SortFunc(sorted, func(a, b Real) int { return a.Addr.Compare(b.Addr) })
	weighted := 0
	for i, r := range sorted {
		if !r.Addr.IsValid() {
			return nil, fmt.Errorf("maglev: %w (zero netip.Addr) for real ID %d", errInvalidAddr, r.ID)
		}
		if r.ID == 0 {
			return nil, fmt.Errorf("maglev: real %v: %w", r.Addr, errZeroID)
		}
		if i > 0 && sorted[i-1].Addr == r.Addr {
			return nil, fmt.Errorf("maglev: %w %v", errDuplicateAddr, r.Addr)
		}
		if r.Weight > 0 {
			weighted++
		}
	}
	if err := checkIDs(sorted); err != nil {
		return nil, err
	}
	if weighted == 0 {
		return nil, nil
	}
	if uint64(weighted) > uint64(size) {
		return nil, fmt.Errorf("maglev: %w: %d reals with weight > 0 for %d slots", errTooManyReals, weighted, size)
	}

	ms := make([]member, 0, weighted)
	for _, r := range sorted {
		if r.Weight == 0 {
			continue
		}
		h1, h2 := addrHash(r.Addr, saltOffset), addrHash(r.Addr, saltSkip)
		ms = append(ms, member{
			id:     r.ID,
			weight: r.Weight,
			pos:    uint32(h1 % uint64(size)),
			skip:   uint32(h2%uint64(size-1)) + 1,
		})
	}
	apportion(ms, size)

	table := make([]uint32, size)
	// A bitmap of claimed slots (8 KiB for the default size) keeps the probe
	// loop, which dominates the build, inside L1 instead of striding through
	// the 256 KiB table.
	taken := make([]uint64, (size+63)/64)
	schedule(ms, func(i int) {
		m := &ms[i]
		pos := m.pos
		for taken[pos>>6]&(1<<(pos&63)) != 0 {
			pos += m.skip
			if pos >= size {
				pos -= size
			}
		}
		taken[pos>>6] |= 1 << (pos & 63)
		table[pos] = m.id
		pos += m.skip
		if pos >= size {
			pos -= size
		}
		m.pos = pos
	})
	return table, nil
}

// checkIDs rejects an ID used by two reals; sorted is ordered by address so
// the error names the same pair whatever the input order.
func checkIDs(sorted []Real) error {
	type idAddr struct {
		id   uint32
		addr netip.Addr
	}
	ids := make([]idAddr, len(sorted))
	for i, r := range sorted {
		ids[i] = idAddr{r.ID, r.Addr}
	}
	// Stable so that, for a shared ID, the lower address comes first.
	slices.SortStableFunc(ids, func(a, b idAddr) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	for i := 1; i < len(ids); i++ {
		if ids[i].id == ids[i-1].id {
			return fmt.Errorf("maglev: %w %d (reals %v and %v)", errDuplicateID, ids[i].id, ids[i-1].addr, ids[i].addr)
		}
	}
	return nil
}
