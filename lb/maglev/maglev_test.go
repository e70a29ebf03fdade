package maglev

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"vipcast/internal/hashmix"
)

// v4 and v6 give the i-th address of a contiguous block, the layout that
// stresses the hash most (see addrHash).
func v4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func v6(i int) netip.Addr {
	var b [16]byte
	copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8})
	b[13], b[14], b[15] = byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

// mkReals returns n reals with IDs 1..n and weight(i) each.
func mkReals(n int, addr func(int) netip.Addr, weight func(int) uint32) []Real {
	rs := make([]Real, n)
	for i := range rs {
		rs[i] = Real{Addr: addr(i), ID: uint32(i + 1), Weight: weight(i)}
	}
	return rs
}

func equal(int) uint32      { return 1 }
func oneToTen(i int) uint32 { return uint32(i%10 + 1) }

// mixedFamilies alternates IPv4 and IPv6 addresses.
func mixedFamilies(i int) netip.Addr {
	if i%2 == 0 {
		return v4(i)
	}
	return v6(i)
}

func mustBuild(t testing.TB, reals []Real, size uint32) []uint32 {
	t.Helper()
	ring, err := Build(reals, size)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return ring
}

// asAddrs expresses a ring through addresses, the form in which two rings
// built with different IDs can be compared.
func asAddrs(t testing.TB, ring []uint32, reals []Real) []netip.Addr {
	t.Helper()
	byID := make(map[uint32]netip.Addr, len(reals))
	for _, r := range reals {
		byID[r.ID] = r.Addr
	}
	out := make([]netip.Addr, len(ring))
	for i, id := range ring {
		a, ok := byID[id]
		if !ok {
			t.Fatalf("slot %d holds ID %d, which belongs to no real", i, id)
		}
		out[i] = a
	}
	return out
}

func counts(ring []netip.Addr) map[netip.Addr]int {
	c := make(map[netip.Addr]int)
	for _, a := range ring {
		c[a]++
	}
	return c
}

func TestDeterminism(t *testing.T) {
	tests := []struct {
		name  string
		reals []Real
		size  uint32
	}{
		{"100 equal", mkReals(100, v4, equal), DefaultSize},
		{"100 weighted", mkReals(100, v4, oneToTen), DefaultSize},
		{"mixed families with weight 0", mkReals(50, mixedFamilies, func(i int) uint32 { return uint32(i % 4) }), 1021},
		{"3 reals small ring", mkReals(3, v6, oneToTen), 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := asAddrs(t, mustBuild(t, tt.reals, tt.size), tt.reals)
			rng := rand.New(rand.NewPCG(1, 2))
			for round := range 8 {
				rs := slices.Clone(tt.reals)
				rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
				// Fresh, unrelated IDs: the ring must only be relabelled.
				ids := rng.Perm(len(rs))
				for i := range rs {
					rs[i].ID = uint32(ids[i])*7 + 1000
				}
				got := asAddrs(t, mustBuild(t, rs, tt.size), rs)
				if !slices.Equal(got, want) {
					i := 0
					for got[i] == want[i] {
						i++
					}
					t.Fatalf("round %d: ring differs from the reference at slot %d: %v, want %v", round, i, got[i], want[i])
				}
			}
		})
	}
}

// TestGolden pins the ring's definition (hash, salts, apportionment, turn
// order): another host, Go release or refactoring must produce the same
// slots, or flows would move when a load balancer is upgraded.
func TestGolden(t *testing.T) {
	reals := []Real{
		{Addr: netip.MustParseAddr("10.0.0.1"), ID: 1, Weight: 1},
		{Addr: netip.MustParseAddr("10.0.0.2"), ID: 2, Weight: 2},
		{Addr: netip.MustParseAddr("2001:db8::1"), ID: 3, Weight: 1},
	}
	ring := mustBuild(t, reals, 13)
	want := []uint32{2, 2, 3, 3, 2, 1, 1, 2, 1, 2, 3, 2, 2}
	if !slices.Equal(ring, want) {
		t.Errorf("ring = %v, want %v", ring, want)
	}
	hashes := []struct {
		addr string
		salt byte
		want uint64
	}{
		{"10.0.0.1", saltOffset, 0x494574fba69e0a25},
		{"10.0.0.1", saltSkip, 0x1e28da0d00038c00},
		{"2001:db8::1", saltOffset, 0xcf4deff2ee7de1fb},
	}
	for _, h := range hashes {
		if got := addrHash(netip.MustParseAddr(h.addr), h.salt); got != h.want {
			t.Errorf("addrHash(%s, %#x) = %#x, want %#x", h.addr, h.salt, got, h.want)
		}
	}
}

// TestAddrHashMatchesFNV checks that the inlined FNV-1a is the documented
// one, so the definition can be reproduced with hash/fnv.
func TestAddrHashMatchesFNV(t *testing.T) {
	for _, s := range []string{"10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1%eth0", "0.0.0.0"} {
		a := netip.MustParseAddr(s)
		for _, salt := range []byte{saltOffset, saltSkip} {
			h := fnv.New64a()
			b := a.As16()
			h.Write([]byte{salt, byte(a.BitLen() / 8)})
			h.Write(b[:])
			h.Write([]byte(a.Zone()))
			if got, want := addrHash(a, salt), hashmix.Fmix64(h.Sum64()); got != want {
				t.Errorf("addrHash(%s, %#x) = %#x, hash/fnv gives %#x", s, salt, got, want)
			}
		}
	}
}

func TestBalance(t *testing.T) {
	tests := []struct {
		name  string
		reals []Real
	}{
		{"100 equal", mkReals(100, v4, equal)},
		{"100 weights 1..10", mkReals(100, v4, oneToTen)},
		{"100 weights 1..10 mixed families", mkReals(100, mixedFamilies, oneToTen)},
		{"100 large weights", mkReals(100, v6, func(i int) uint32 { return 1<<31 + uint32(i)*1000003 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring := asAddrs(t, mustBuild(t, tt.reals, DefaultSize), tt.reals)
			c := counts(ring)
			var sum float64
			for _, r := range tt.reals {
				sum += float64(r.Weight)
			}
			var worstRel, worstSlots float64
			var minShare, maxShare = math.Inf(1), 0.0
			for _, r := range tt.reals {
				want := float64(r.Weight) / sum
				got := float64(c[r.Addr]) / DefaultSize
				rel := math.Abs(got-want) / want
				slots := math.Abs(float64(c[r.Addr]) - want*DefaultSize)
				worstRel, worstSlots = max(worstRel, rel), max(worstSlots, slots)
				minShare, maxShare = min(minShare, got), max(maxShare, got)
				if rel > 0.01 {
					t.Errorf("%v (weight %d): share %.5f, want %.5f (±1%% relative): off by %.2f%%", r.Addr, r.Weight, got, want, rel*100)
				}
				// Apportionment promises more than 1%: within one slot.
				if slots >= 1 {
					t.Errorf("%v (weight %d): %d slots, exact share %.3f", r.Addr, r.Weight, c[r.Addr], want*DefaultSize)
				}
			}
			t.Logf("shares %.5f..%.5f; worst deviation %.3f%% relative (%.3f slots)", minShare, maxShare, worstRel*100, worstSlots)
		})
	}
}

// disruption returns how many slots changed real between before and after
// although neither side of the change is the real that was removed or added
// (whose slots had to move).
func disruption(before, after []netip.Addr, changed netip.Addr) (moved, excess int) {
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		moved++
		if before[i] != changed && after[i] != changed {
			excess++
		}
	}
	return moved, excess
}

func TestDisruption(t *testing.T) {
	const maxExcess = 0.02
	base := map[string][]Real{
		"equal":     mkReals(100, v4, equal),
		"1..10":     mkReals(100, v4, oneToTen),
		"mixed fam": mkReals(100, mixedFamilies, equal),
	}
	type change struct {
		name   string
		base   string
		remove int  // index into base, or -1
		add    Real // used when remove < 0
	}
	var tests []change
	for _, b := range []string{"equal", "1..10", "mixed fam"} {
		for _, i := range []int{0, 37, 99} {
			tests = append(tests, change{fmt.Sprintf("%s/remove #%d weight %d", b, i, base[b][i].Weight), b, i, Real{}})
		}
		for _, w := range []uint32{1, 10} {
			tests = append(tests, change{fmt.Sprintf("%s/add %v weight %d", b, v4(1000), w), b, -1, Real{Addr: v4(1000), ID: 5000, Weight: w}})
			tests = append(tests, change{fmt.Sprintf("%s/add %v weight %d", b, v6(1007), w), b, -1, Real{Addr: v6(1007), ID: 5001, Weight: w}})
		}
	}
	var worst float64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := base[tt.base]
			after := slices.Clone(before)
			var changed netip.Addr
			if tt.remove >= 0 {
				changed = before[tt.remove].Addr
				after = slices.Delete(after, tt.remove, tt.remove+1)
			} else {
				changed = tt.add.Addr
				after = append(after, tt.add)
			}
			b := asAddrs(t, mustBuild(t, before, DefaultSize), before)
			a := asAddrs(t, mustBuild(t, after, DefaultSize), after)
			moved, excess := disruption(b, a, changed)
			necessary := moved - excess
			if necessary == 0 {
				t.Fatalf("no slot of %v moved: the change was not applied", changed)
			}
			frac := float64(excess) / DefaultSize
			worst = max(worst, frac)
			t.Logf("moved %d slots (%.3f%%): %d necessary, %d beyond (%.3f%% of the table)",
				moved, 100*float64(moved)/DefaultSize, necessary, excess, 100*frac)
			if frac > maxExcess {
				t.Errorf("%d slots (%.3f%%) changed between unaffected reals, want <= %.0f%%", excess, 100*frac, 100*maxExcess)
			}
		})
	}
	t.Logf("worst excess disruption: %.3f%% of the table", 100*worst)
}

func TestWeightZero(t *testing.T) {
	reals := mkReals(20, mixedFamilies, func(i int) uint32 { return uint32(i % 3) })
	ring := asAddrs(t, mustBuild(t, reals, 1009), reals)
	c := counts(ring)
	var active []Real
	for _, r := range reals {
		if r.Weight == 0 {
			if c[r.Addr] != 0 {
				t.Errorf("%v has weight 0 but %d slots", r.Addr, c[r.Addr])
			}
			continue
		}
		if c[r.Addr] == 0 {
			t.Errorf("%v has weight %d but no slot", r.Addr, r.Weight)
		}
		active = append(active, r)
	}
	// A weight-0 real must be invisible, not just slot-less: draining a real
	// (weight to 0) must not move anyone else's flows.
	if without := asAddrs(t, mustBuild(t, active, 1009), active); !slices.Equal(ring, without) {
		t.Errorf("ring with weight-0 reals differs from the ring without them")
	}

	empty := []struct {
		name  string
		reals []Real
	}{
		{"nil", nil},
		{"all weight 0", mkReals(5, mixedFamilies, func(int) uint32 { return 0 })},
	}
	for _, tt := range empty {
		t.Run(tt.name, func(t *testing.T) {
			ring, err := Build(tt.reals, DefaultSize)
			if err != nil || ring != nil {
				t.Errorf("Build = (%v, %v), want (nil, nil)", ring, err)
			}
		})
	}
}

func TestEverySlotFilled(t *testing.T) {
	tests := []struct {
		name  string
		reals []Real
		size  uint32
	}{
		{"single real", mkReals(1, v4, equal), DefaultSize},
		{"single v6 real, smallest ring", mkReals(1, v6, func(int) uint32 { return 42 }), 3},
		{"as many reals as slots", mkReals(13, mixedFamilies, oneToTen), 13},
		{"1000 reals", mkReals(1000, mixedFamilies, oneToTen), DefaultSize},
		// The light reals' exact shares are far below one slot; a non-zero
		// weight still guarantees them one.
		{"one heavy, many light", append(mkReals(50, v4, equal), Real{Addr: v6(1), ID: 999, Weight: math.MaxUint32}), 101},
		{"largest ring", mkReals(3, v4, oneToTen), 16777213},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.size > 1<<20 && testing.Short() {
				t.Skip("a 16M-slot ring takes seconds to fill")
			}
			ring := mustBuild(t, tt.reals, tt.size)
			if len(ring) != int(tt.size) {
				t.Fatalf("len = %d, want %d", len(ring), tt.size)
			}
			if i := slices.Index(ring, 0); i >= 0 {
				t.Fatalf("slot %d is empty", i)
			}
			c := counts(asAddrs(t, ring, tt.reals))
			for _, r := range tt.reals {
				if c[r.Addr] == 0 {
					t.Errorf("%v (weight %d) has no slot", r.Addr, r.Weight)
				}
			}
			if len(tt.reals) == 1 && c[tt.reals[0].Addr] != int(tt.size) {
				t.Errorf("single real holds %d of %d slots", c[tt.reals[0].Addr], tt.size)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	a1, a2 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::77")
	ok := []Real{{Addr: a1, ID: 1, Weight: 1}, {Addr: a2, ID: 2, Weight: 1}}
	with := func(r Real) []Real { return append(slices.Clone(ok), r) }
	tests := []struct {
		name  string
		reals []Real
		size  uint32
		is    error
		text  []string // each must appear in the message
	}{
		{"size 0", ok, 0, errInvalidSize, []string{" 0:"}},
		{"size 2", ok, 2, errInvalidSize, []string{" 2:"}},
		{"size not prime", ok, 65536, errInvalidSize, []string{"65536", "not prime"}},
		{"size MaxSize is not prime", ok, MaxSize, errInvalidSize, []string{"16777216"}},
		{"size above MaxSize", ok, MaxSize + 1, errInvalidSize, []string{"16777217"}},
		{"duplicate v4", with(Real{Addr: a1, ID: 3, Weight: 5}), 13, errDuplicateAddr, []string{"10.1.2.3"}},
		{"duplicate v6 at weight 0", with(Real{Addr: a2, ID: 3}), 13, errDuplicateAddr, []string{"2001:db8::77"}},
		{"ID 0", with(Real{Addr: netip.MustParseAddr("10.9.9.9"), Weight: 1}), 13, errZeroID, []string{"10.9.9.9", "ID 0"}},
		{"ID 0 at weight 0", with(Real{Addr: netip.MustParseAddr("10.9.9.8")}), 13, errZeroID, []string{"10.9.9.8", "ID 0"}},
		{"zero Addr", with(Real{ID: 77, Weight: 1}), 13, errInvalidAddr, []string{"ID 77"}},
		{"duplicate ID", with(Real{Addr: netip.MustParseAddr("10.9.9.9"), ID: 2, Weight: 1}), 13, errDuplicateID, []string{"ID 2", "10.9.9.9", "2001:db8::77"}},
		{"too many reals", mkReals(8, v4, equal), 7, errTooManyReals, []string{"8 reals", "7 slots"}},
		{"invalid size beats empty ring", nil, 4, errInvalidSize, []string{" 4:"}},
		{"bad real beats empty ring", []Real{{Addr: a1, ID: 0}}, 13, errZeroID, []string{"10.1.2.3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring, err := Build(tt.reals, tt.size)
			if err == nil {
				t.Fatalf("Build succeeded with %d slots, want an error", len(ring))
			}
			if ring != nil {
				t.Errorf("Build returned a ring with its error")
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %q", err, tt.is)
			}
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	// Only weighted reals need a slot of their own.
	idle := mkReals(3, v6, func(int) uint32 { return 0 })
	for i := range idle {
		idle[i].ID += 100
	}
	if _, err := Build(append(mkReals(7, v4, equal), idle...), 7); err != nil {
		t.Errorf("7 weighted reals (and 3 at weight 0) in 7 slots: %v", err)
	}
}

func TestValidSize(t *testing.T) {
	for _, s := range []uint32{3, 5, 13, 1021, DefaultSize, 16777213} {
		if err := ValidSize(s); err != nil {
			t.Errorf("ValidSize(%d) = %v", s, err)
		}
	}
	// isPrime against math/big on all small sizes and near MaxSize.
	check := func(n uint32) {
		if got, want := isPrime(n), big.NewInt(int64(n)).ProbablyPrime(20); got != want {
			t.Errorf("isPrime(%d) = %v, want %v", n, got, want)
		}
	}
	for n := range uint32(70000) {
		check(n)
	}
	for n := uint32(MaxSize - 5000); n <= MaxSize+10; n++ {
		check(n)
	}
	largest := uint32(0)
	for n := uint32(MaxSize); n > 0; n-- {
		if ValidSize(n) == nil {
			largest = n
			break
		}
	}
	if largest != 16777213 {
		t.Errorf("largest valid size = %d, want 16777213", largest)
	}
}

func TestMixedFamilies(t *testing.T) {
	v4a := netip.MustParseAddr("192.0.2.10")
	reals := []Real{
		{Addr: v4a, ID: 1, Weight: 1},
		{Addr: netip.AddrFrom16(v4a.As16()), ID: 2, Weight: 1}, // ::ffff:192.0.2.10, a different real
		{Addr: netip.MustParseAddr("2001:db8::10"), ID: 3, Weight: 1},
		{Addr: netip.MustParseAddr("fe80::10%eth0"), ID: 4, Weight: 1},
		{Addr: netip.MustParseAddr("fe80::10%eth1"), ID: 5, Weight: 1},
		{Addr: netip.MustParseAddr("198.51.100.7"), ID: 6, Weight: 2},
	}
	ring := mustBuild(t, reals, DefaultSize)
	c := counts(asAddrs(t, ring, reals))
	for _, r := range reals {
		want := float64(DefaultSize) * float64(r.Weight) / 7
		if d := math.Abs(float64(c[r.Addr]) - want); d >= 1 {
			t.Errorf("%v: %d slots, want %.2f", r.Addr, c[r.Addr], want)
		}
	}
	// Addresses that share As16() must still get their own permutations, or
	// they would compete for exactly the same slots.
	for _, pair := range [][2]int{{0, 1}, {3, 4}} {
		a, b := reals[pair[0]].Addr, reals[pair[1]].Addr
		if addrHash(a, saltOffset) == addrHash(b, saltOffset) || addrHash(a, saltSkip) == addrHash(b, saltSkip) {
			t.Errorf("%v and %v hash alike", a, b)
		}
	}
}

func BenchmarkBuild1000(b *testing.B) {
	reals := mkReals(1000, mixedFamilies, equal)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(reals, DefaultSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuild1000Skewed is the case a per-round credit scheme handles
// badly: one real takes most slots while 999 others each take a few.
func BenchmarkBuild1000Skewed(b *testing.B) {
	reals := mkReals(1000, mixedFamilies, func(i int) uint32 {
		if i == 0 {
			return 1 << 20
		}
		return 1
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(reals, DefaultSize); err != nil {
			b.Fatal(err)
		}
	}
}

// TestScheduleOrder checks the grouped heap against the definition: every
// turn of every real, sorted by due time, then larger quota, then address.
func TestScheduleOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 7, 50, 300} {
		for _, maxQuota := range []uint32{1, 3, 40} {
			ms := make([]member, n)
			for i := range ms {
				ms[i].quota = 1 + rng.Uint32N(maxQuota)
			}
			type ev struct{ k, q, i int }
			var want []int
			var evs []ev
			for i, m := range ms {
				for k := range int(m.quota) {
					evs = append(evs, ev{k, int(m.quota), i})
				}
			}
			slices.SortFunc(evs, func(a, b ev) int {
				// (2a.k+1)/(2a.q) vs (2b.k+1)/(2b.q)
				if c := (2*a.k+1)*b.q - (2*b.k+1)*a.q; c != 0 {
					return c
				}
				if a.q != b.q {
					return b.q - a.q
				}
				return a.i - b.i
			})
			for _, e := range evs {
				want = append(want, e.i)
			}
			var got []int
			schedule(ms, func(i int) { got = append(got, i) })
			if !slices.Equal(got, want) {
				t.Errorf("n=%d max quota %d: turn order differs from the definition", n, maxQuota)
			}
		}
	}
}

// BenchmarkBuild1000Distinct approaches the heap's worst case: weights
// 1..1000 give as many distinct quotas (about 130 groups) as 1000 reals can
// have in 65537 slots.
func BenchmarkBuild1000Distinct(b *testing.B) {
	reals := mkReals(1000, mixedFamilies, func(i int) uint32 { return uint32(i + 1) })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(reals, DefaultSize); err != nil {
			b.Fatal(err)
		}
	}
}

// paperRing is Pseudocode 1 of the paper, written as plainly as possible:
// strict round robin in address order until the table is full.
func paperRing(reals []Real, size uint32) []uint32 {
	rs := slices.Clone(reals)
	slices.SortFunc(rs, func(a, b Real) int { return a.Addr.Compare(b.Addr) })
	next := make([]uint64, len(rs))
	table := make([]uint32, size)
	for filled := uint32(0); ; {
		for i, r := range rs {
			offset := addrHash(r.Addr, saltOffset) % uint64(size)
			skip := addrHash(r.Addr, saltSkip)%uint64(size-1) + 1
			c := (offset + next[i]*skip) % uint64(size)
			for table[c] != 0 {
				next[i]++
				c = (offset + next[i]*skip) % uint64(size)
			}
			table[c] = r.ID
			next[i]++
			if filled++; filled == size {
				return table
			}
		}
	}
}

// TestEqualWeightsArePaper checks that weights only reorder turns: with
// equal weights the ring is the paper's, slot for slot.
func TestEqualWeightsArePaper(t *testing.T) {
	tests := []struct {
		n      int
		weight uint32
		size   uint32
	}{
		{1, 1, 13},
		{3, 1, 13},
		{13, 7, 13},
		{100, 1, DefaultSize},
		{100, 1000, DefaultSize},
		{333, 2, 1021},
		{1000, 1, DefaultSize},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d reals weight %d size %d", tt.n, tt.weight, tt.size), func(t *testing.T) {
			reals := mkReals(tt.n, mixedFamilies, func(int) uint32 { return tt.weight })
			got := mustBuild(t, reals, tt.size)
			if want := paperRing(reals, tt.size); !slices.Equal(got, want) {
				t.Errorf("ring differs from the paper's round robin")
			}
		})
	}
}
