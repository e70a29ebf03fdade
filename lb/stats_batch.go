package lb

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"vipcast/bpf"
)

// VIPCounters is one VIP as Balancer.Counters reports it: what VIPs
// reports, with the VIP's counter and its reals' counters.
type VIPCounters struct {
	VIPInfo
	Counter      Counter
	RealCounters []Counter // RealCounters[i] is the counter of Reals[i]
}

// Counters lists the VIPs as VIPs does, with the counters of every VIP and
// every real. It reads each counter map with one batch lookup instead of
// one syscall per entry, which is what makes scraping 10,000 reals cheap.
// The table lock is held across the reads, so no VIP number or real id can
// be reused for another VIP or real between the listing and the reading.
func (b *Balancer) Counters() ([]VIPCounters, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var maxNum, maxID uint32
	for _, vs := range b.vips {
		maxNum = max(maxNum, vs.num)
		for _, rs := range vs.reals {
			maxID = max(maxID, rs.id)
		}
	}
	out := make([]VIPCounters, 0, len(b.vips))
	if len(b.vips) == 0 {
		return out, nil
	}
	vipCounters, err := b.readCounters(b.objs.VipStats, maxNum+1)
	if err != nil {
		return nil, fmt.Errorf("read vip counters: %w", err)
	}
	realCounters, err := b.readCounters(b.objs.RealStats, maxID+1)
	if err != nil {
		return nil, fmt.Errorf("read real counters: %w", err)
	}
	for _, vs := range b.vips {
		v := VIPCounters{VIPInfo: VIPInfo{VIP: vs.VIP}, Counter: vipCounters[vs.num]}
		for _, rs := range vs.reals {
			v.Reals = append(v.Reals, rs.Real)
		}
		sortReals(v.Reals)
		v.RealCounters = make([]Counter, len(v.Reals))
		for i, r := range v.Reals {
			v.RealCounters[i] = realCounters[vs.reals[r.Addr].id]
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, c VIPCounters) int { return compareKeys(a.Key, c.Key) })
	return out, nil
}

// readCounters reads entries [0, n) of a per-CPU counter array, summed
// over CPUs. Kernels without batch operations get one lookup per entry.
func (b *Balancer) readCounters(m *ebpf.Map, n uint32) ([]Counter, error) {
	keys := make([]uint32, n)
	per := make([]bpf.BalancerCounter, int(n)*b.ncpu)
	var cursor ebpf.MapBatchCursor
	done := 0
	for done < int(n) {
		got, err := m.BatchLookup(&cursor, keys[done:], per[done*b.ncpu:], nil)
		done += got
		if errors.Is(err, ebpf.ErrNotSupported) {
			return b.lookupCounters(m, n)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) { // the end of the array
			break
		}
		if err != nil {
			return nil, err
		}
		if got == 0 {
			break
		}
	}
	if done != int(n) {
		return nil, fmt.Errorf("batch lookup returned %d of %d entries", done, n)
	}
	out := make([]Counter, n)
	for i := range done {
		// Keys come back in index order for an array; index by key anyway.
		if keys[i] >= n {
			return nil, fmt.Errorf("batch lookup returned key %d, beyond %d", keys[i], n)
		}
		c := &out[keys[i]]
		for _, v := range per[i*b.ncpu : (i+1)*b.ncpu] {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
	}
	return out, nil
}

func (b *Balancer) lookupCounters(m *ebpf.Map, n uint32) ([]Counter, error) {
	out := make([]Counter, n)
	for i := range n {
		c, err := b.readCounter(m, i)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}
