package lb

// idPool hands out small integer ids (map indexes) first-in first-out: a
// freed id goes to the back of the queue, so it is reused as late as
// possible and stale connection-table entries that still name it have long
// expired by then.
type idPool struct {
	free []uint32
}

// newIDPool holds the ids [first, limit).
func newIDPool(first, limit uint32) *idPool {
	p := &idPool{free: make([]uint32, 0, limit-first)}
	for id := first; id < limit; id++ {
		p.free = append(p.free, id)
	}
	return p
}

func (p *idPool) get() (uint32, bool) {
	if len(p.free) == 0 {
		return 0, false
	}
	id := p.free[0]
	p.free = p.free[1:]
	return id, true
}

func (p *idPool) put(id uint32) { p.free = append(p.free, id) }

// take removes a specific id from the free list (adopting state already in
// the kernel); false if it is not free.
func (p *idPool) take(id uint32) bool {
	for i, f := range p.free {
		if f == id {
			p.free = append(p.free[:i], p.free[i+1:]...)
			return true
		}
	}
	return false
}
