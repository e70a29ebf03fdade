package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/cilium/ebpf"

	"vipcast/bpf"
)

// Decap is the reals' decapsulation program with its VIP table.
type Decap struct {
	objs bpf.DecapObjects
}

// LoadDecap loads the decapsulation program. With pinDir set, its VIP
// table is pinned there (and an earlier one adopted), so a program
// attached by a short-lived command keeps its table.
func LoadDecap(pinDir string) (*Decap, error) {
	spec, err := bpf.LoadDecap()
	if err != nil {
		return nil, fmt.Errorf("load decap spec: %w", err)
	}
	var opts *ebpf.CollectionOptions
	if pinDir != "" {
		if err := os.MkdirAll(pinDir, 0o700); err != nil {
			return nil, fmt.Errorf("pin directory %s: %w", pinDir, err)
		}
		spec.Maps["decap_vips"].Pinning = ebpf.PinByName
		opts = &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}}
	}
	d := &Decap{}
	if err := spec.LoadAndAssign(&d.objs, opts); err != nil {
		return nil, fmt.Errorf("load decap program: %w", err)
	}
	return d, nil
}

// Close releases the program and maps (attached or pinned ones stay).
func (d *Decap) Close() error { return d.objs.Close() }

// Program is the XDP program for the real's interface.
func (d *Decap) Program() *ebpf.Program { return d.objs.VipcastDecap }

// SetVIPs makes the served VIP addresses exactly vips.
func (d *Decap) SetVIPs(vips []netip.Addr) error {
	want := map[bpf.BalancerVipKey]bool{}
	for _, v := range vips {
		if !v.IsValid() || v.Is4In6() || v.Zone() != "" || v.IsUnspecified() {
			return fmt.Errorf("vip %s: must be a plain unicast address: %w", v, ErrInvalid)
		}
		want[vipAddrKey(v)] = true
	}
	var stale []bpf.DecapVipKey
	var key bpf.DecapVipKey
	var val uint32
	it := d.objs.DecapVips.Iterate()
	for it.Next(&key, &val) {
		if !want[bpf.BalancerVipKey(key)] {
			stale = append(stale, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read decap vips: %w", err)
	}
	for k := range want {
		dk := bpf.DecapVipKey(k)
		if err := d.objs.DecapVips.Put(&dk, uint32(1)); err != nil {
			return fmt.Errorf("add decap vip: %w", err)
		}
	}
	for _, k := range stale {
		if err := d.objs.DecapVips.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove decap vip: %w", err)
		}
	}
	return nil
}

// DecapStats are the program's counters, summed over CPUs.
type DecapStats = bpf.DecapDecapStats

// Stats reads the counters.
func (d *Decap) Stats() (DecapStats, error) {
	var per []bpf.DecapDecapStats
	if err := d.objs.DecapCounters.Lookup(uint32(0), &per); err != nil {
		return DecapStats{}, fmt.Errorf("read decap stats: %w", err)
	}
	var s DecapStats
	for _, p := range per {
		s.Decapsulated += p.Decapsulated
		s.Passed += p.Passed
	}
	return s, nil
}
