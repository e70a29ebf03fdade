package daemon

import (
	"errors"
	"fmt"
	"net/netip"

	"vipcast/health"
	"vipcast/lb"
)

// operatorMarks is the room the mark table keeps, beyond hc_mark_range,
// for marks operators set by hand (`vipcast hc add`).
const operatorMarks = 1024

// markTable is the healthcheck program's mark -> real table (lb.Healthcheck).
type markTable interface {
	AddMark(uint32, netip.Addr) error
	DelMark(uint32) error
	Marks() []lb.Mark
}

// markSync keeps the automatic marks (one per checked real, from the
// configured range) in the healthcheck program's table. Marks outside the
// range belong to operators (`vipcast hc add`) and are left alone.
type markSync struct {
	alloc *health.MarkAllocator
	table markTable
}

func (m *markSync) inRange(mark uint32) bool {
	first, last := m.alloc.Range()
	return mark >= first && mark <= last
}

// sync allocates marks for reals and makes the table match.
func (m *markSync) sync(reals []netip.Addr) (map[netip.Addr]uint32, error) {
	want, err := m.alloc.Sync(reals)
	if err != nil {
		return nil, fmt.Errorf("healthcheck marks: %w", err)
	}
	have := map[uint32]netip.Addr{}
	for _, e := range m.table.Marks() {
		if m.inRange(e.Mark) {
			have[e.Mark] = e.Real
		}
	}
	wantByMark := map[uint32]netip.Addr{}
	for real, mark := range want {
		wantByMark[mark] = real
	}
	var errs []error
	for mark, real := range have {
		if wantByMark[mark] != real {
			if err := m.table.DelMark(mark); err != nil && !errors.Is(err, lb.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	for mark, real := range wantByMark {
		if have[mark] != real {
			if err := m.table.AddMark(mark, real); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return want, errors.Join(errs...)
}
