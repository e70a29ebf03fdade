package maglev

import "slices"

// apportion sets every member's quota: how many of the size slots it ends
// up with. The quotas sum to size.
//
// Shares are made exact first and the fill order second (see schedule),
// rather than letting a credit counter decide when the table happens to run
// full: then each real's slot count is within one slot of
// size*weight/sum(weights), whatever the mix of weights, and the final,
// partial round of a credit scheme cannot favour whoever sorts first.
//
// The method is largest remainder (Hamilton): each real gets the floor of
// its exact share, and the slots left over go to the largest fractional
// parts, ties to the lower address. One adjustment: a real whose exact
// share is below one slot still gets exactly one, since a non-zero weight
// means "take new flows", and the others share what remains in proportion.
// Those tiny reals are the lightest ones, so they form a prefix of the
// weight order; equal weights always land on the same side of the cut (the
// test below is unchanged when the next real has the same weight), so the
// result does not depend on how ties are ordered.
func apportion(ms []member, size uint32) {
	byWeight := make([]int32, len(ms))
	var total uint64
	for i := range ms {
		byWeight[i] = int32(i)
		total += uint64(ms[i].weight)
	}
	slices.SortStableFunc(byWeight, func(a, b int32) int {
		return cmpUint32(ms[a].weight, ms[b].weight)
	})

	// Build guarantees len(ms) <= size, so the loop stops at the latest on
	// the heaviest real: with one real left, size-k >= 1 slots cover it.
	slots := uint64(size)
	k := 0
	for ; k < len(byWeight); k++ {
		m := &ms[byWeight[k]]
		if slots*uint64(m.weight) >= total {
			break
		}
		m.quota = 1
		slots--
		total -= uint64(m.weight)
	}

	// slots <= 2^24 and weights < 2^32, so the products fit in 64 bits.
	rest := byWeight[k:]
	rem := make([]uint64, len(ms))
	left := slots
	for _, i := range rest {
		w := slots * uint64(ms[i].weight)
		ms[i].quota = uint32(w / total)
		rem[i] = w % total
		left -= w / total
	}
	if left == 0 {
		return
	}
	slices.SortFunc(rest, func(a, b int32) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return int(a - b) // ms is in address order
	})
	// left < len(rest): each floor lost less than one slot.
	for _, i := range rest[:left] {
		ms[i].quota++
	}
}

func cmpUint32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// schedule calls place(i) once for every slot member i is to claim, quota
// times per member, in the order the reals take their turns.
//
// The paper's round robin gives every real one turn per round. With quotas
// the k-th turn (from 0) of a real with quota q is due at virtual time
// (k+1/2)/q, and turns run in time order; equal times go to the larger
// quota first, then to the lower address. So every real's turns are spread
// evenly over the whole fill, in proportion to its share, and a real of
// weight 10 does not claim its first ten preferences before a real of
// weight 1 gets its first: who picks early matters in Maglev because early
// picks get preferred slots, and even spreading is what keeps a change of
// one real from reshuffling the order of everyone else's picks. With equal
// quotas this is exactly the paper's round robin in address order. The
// half-step offset centres each turn in its interval, so light reals are
// not all pushed to the end of the fill.
//
// Reals with the same quota share every due time, so they move as a group:
// the min-heap holds one entry per distinct quota and a pop runs the whole
// group in address order. Distinct quotas sum to at most size, so there are
// fewer than sqrt(2*size) groups (362 for the default size) however many
// reals there are, and the heap costs O(size log sqrt(size)) at worst;
// with the few distinct weights usual in practice it is negligible next to
// the probing. Stepping through credit rounds instead would cost
// O(max quota * n), which degenerates to O(size * n) when one heavy real
// sits among many light ones.
func schedule(ms []member, place func(i int)) {
	// order lists members by quota, largest first, then by address; a group
	// is a run of equal quota in it.
	order := make([]int32, len(ms))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := cmpUint32(ms[b].quota, ms[a].quota); c != 0 {
			return c
		}
		return int(a - b)
	})
	var h turnHeap
	for start := 0; start < len(order); {
		q := ms[order[start]].quota
		end := start + 1
		for end < len(order) && ms[order[end]].quota == q {
			end++
		}
		// Quotas are at least 1 (see apportion).
		h = append(h, turn{next: 1, quota: uint64(q), start: int32(start), end: int32(end)})
		start = end
	}
	// Appended by decreasing quota, h is already a valid heap: the first
	// turn of a larger quota is due earlier.
	for len(h) > 0 {
		t := &h[0]
		for _, i := range order[t.start:t.end] {
			place(int(i))
		}
		t.next += 2
		if t.next > 2*t.quota {
			last := len(h) - 1
			h[0] = h[last]
			h = h[:last]
		}
		h.down(0)
	}
}

// turn is the next turn of the group order[start:end], all of whose
// members have the given quota. It is due at virtual time next/(2*quota):
// next is 2k+1 for the k-th turn, which keeps the comparison in integers
// (exact, so the order cannot depend on floating-point rounding).
type turn struct {
	next       uint64
	quota      uint64
	start, end int32
}

type turnHeap []turn

// before orders turns by due time, ties to the larger quota (unique per
// group). Both products stay below 2^25 * 2^24, far from overflow.
func (h turnHeap) before(a, b int) bool {
	x, y := h[a].next*h[b].quota, h[b].next*h[a].quota
	if x != y {
		return x < y
	}
	return h[a].quota > h[b].quota
}

func (h turnHeap) down(i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && h.before(r, c) {
			c = r
		}
		if !h.before(c, i) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
