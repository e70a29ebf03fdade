package health

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
)

// ErrMarksExhausted is wrapped when every mark of the range is in use, so the
// API server can answer ResourceExhausted.
var ErrMarksExhausted = errors.New("mark range exhausted")

// MarkAllocator hands out one socket mark per real from a range, e.g.
// 10000-19999. A real keeps its mark for as long as it is allocated, so the
// mark → real table of the data plane does not churn when the set of reals
// is reconciled. Marks are handed out round-robin: a freed mark is reused
// only after the rest of the range, so a check still in flight for a removed
// real cannot be taken for the real that got its mark next.
//
// It is safe for concurrent use.
type MarkAllocator struct {
	first, last uint32

	mu     sync.Mutex
	byReal map[netip.Addr]uint32
	inUse  map[uint32]netip.Addr
	next   uint32 // where the search for a free mark starts
}

// NewMarkAllocator returns an allocator for the marks first..last
// (inclusive). Mark 0 means "no mark" and cannot be in the range.
func NewMarkAllocator(first, last uint32) (*MarkAllocator, error) {
	if first == 0 || first > last {
		return nil, fmt.Errorf("mark range %d-%d: must be 1 <= first <= last: %w", first, last, ErrInvalid)
	}
	return &MarkAllocator{
		first:  first,
		last:   last,
		byReal: make(map[netip.Addr]uint32),
		inUse:  make(map[uint32]netip.Addr),
		next:   first,
	}, nil
}

// Range returns the first and last mark the allocator may hand out.
func (a *MarkAllocator) Range() (first, last uint32) { return a.first, a.last }

func (a *MarkAllocator) size() uint64 { return uint64(a.last) - uint64(a.first) + 1 }

func (a *MarkAllocator) exhausted(real netip.Addr) error {
	return fmt.Errorf("no mark for real %s: all %d marks of range %d-%d are in use: %w",
		real, a.size(), a.first, a.last, ErrMarksExhausted)
}

// Mark returns the real's mark, allocating one if the real has none.
func (a *MarkAllocator) Mark(real netip.Addr) (uint32, error) {
	if !real.IsValid() {
		return 0, fmt.Errorf("mark for an invalid real address: %w", ErrInvalid)
	}
	real = real.Unmap()
	a.mu.Lock()
	defer a.mu.Unlock()
	if m, ok := a.byReal[real]; ok {
		return m, nil
	}
	m, ok := a.free()
	if !ok {
		return 0, a.exhausted(real)
	}
	a.assign(real, m)
	return m, nil
}

// Lookup returns the real's mark without allocating.
func (a *MarkAllocator) Lookup(real netip.Addr) (uint32, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.byReal[real.Unmap()]
	return m, ok
}

// Reserve records an existing real → mark mapping, for a daemon that adopts
// the mark table of its predecessor. The mark must be in the range and free
// (or already the real's).
func (a *MarkAllocator) Reserve(real netip.Addr, mark uint32) error {
	if !real.IsValid() {
		return fmt.Errorf("reserve mark %d for an invalid real address: %w", mark, ErrInvalid)
	}
	real = real.Unmap()
	if mark < a.first || mark > a.last {
		return fmt.Errorf("reserve mark %d for real %s: outside range %d-%d: %w", mark, real, a.first, a.last, ErrInvalid)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if owner, ok := a.inUse[mark]; ok && owner != real {
		return fmt.Errorf("reserve mark %d for real %s: already the mark of real %s: %w", mark, real, owner, ErrInvalid)
	}
	if m, ok := a.byReal[real]; ok && m != mark {
		return fmt.Errorf("reserve mark %d for real %s: the real already has mark %d: %w", mark, real, m, ErrInvalid)
	}
	a.assign(real, mark)
	return nil
}

// Release frees the real's mark, if it has one.
func (a *MarkAllocator) Release(real netip.Addr) {
	real = real.Unmap()
	a.mu.Lock()
	defer a.mu.Unlock()
	if m, ok := a.byReal[real]; ok {
		delete(a.byReal, real)
		delete(a.inUse, m)
	}
}

// Sync makes the allocated reals exactly reals: reals that already have a
// mark keep it, new reals get one (in address order, so the result does not
// depend on the order of the argument), and reals not listed are released.
// It is atomic: when the range is too small for the new reals, it returns
// an error and changes nothing. It returns every real's mark.
func (a *MarkAllocator) Sync(reals []netip.Addr) (map[netip.Addr]uint32, error) {
	want := make(map[netip.Addr]bool, len(reals))
	for _, r := range reals {
		if !r.IsValid() {
			return nil, fmt.Errorf("mark for an invalid real address: %w", ErrInvalid)
		}
		want[r.Unmap()] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var added []netip.Addr
	for _, r := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if _, ok := a.byReal[r]; !ok {
			added = append(added, r)
		}
	}
	// Marks of reals that go away are free for this call too; the
	// round-robin cursor still puts them last in line.
	if uint64(len(want)) > a.size() {
		return nil, fmt.Errorf("marks for %d reals: %w", len(want), a.exhausted(added[0]))
	}
	for r, m := range a.byReal {
		if !want[r] {
			delete(a.byReal, r)
			delete(a.inUse, m)
		}
	}
	for _, r := range added {
		m, ok := a.free()
		if !ok { // cannot happen after the size check; keep the invariant anyway
			return nil, a.exhausted(r)
		}
		a.assign(r, m)
	}
	return maps.Clone(a.byReal), nil
}

// Marks returns every allocated real → mark.
func (a *MarkAllocator) Marks() map[netip.Addr]uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.byReal)
}

func (a *MarkAllocator) assign(real netip.Addr, m uint32) {
	a.byReal[real] = m
	a.inUse[m] = real
}

// free finds the next unused mark from the cursor on, wrapping around.
func (a *MarkAllocator) free() (uint32, bool) {
	if uint64(len(a.inUse)) >= a.size() {
		return 0, false
	}
	m := a.next
	for {
		if _, used := a.inUse[m]; !used {
			if m == a.last {
				a.next = a.first
			} else {
				a.next = m + 1
			}
			return m, true
		}
		if m == a.last {
			m = a.first
		} else {
			m++
		}
	}
}
