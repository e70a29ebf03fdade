package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"vipcast/bpf"
)

// adopt rebuilds the Go view of the tables from maps an earlier run
// pinned. VIPs, their numbers, flags and ring sizes, and the reals with
// their ids and up/down state come back exactly; weights are not stored in
// the kernel, so adopted reals carry weight 0 until the owner states the
// desired set with SetReals. Rings are left as they are until then, so
// nothing moves in between.
func (b *Balancer) adopt() error {
	var (
		key  bpf.BalancerVipKey
		meta bpf.BalancerVipMeta
	)
	byNum := map[uint32]*vipState{}
	it := b.objs.Vips.Iterate()
	for it.Next(&key, &meta) {
		k := VIPKey{Addr: addrFromWords(key.Addr, key.Family == 6), Port: ntohs(key.Port), Proto: Proto(key.Proto)}
		if !b.vipNums.take(meta.VipNum) {
			return fmt.Errorf("vip %s: number %d is out of range or used twice", k, meta.VipNum)
		}
		vs := &vipState{
			VIP:   VIP{Key: k, Flags: VIPFlags(meta.Flags) &^ flagAnyPort, RingSize: meta.RingSize},
			num:   meta.VipNum,
			reals: map[netip.Addr]*realState{},
		}
		b.vips[k] = vs
		byNum[meta.VipNum] = vs
		b.addrRefs[k.Addr]++
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read vips: %w", err)
	}

	var def bpf.BalancerRealDef
	for id := uint32(1); id < uint32(b.cfg.MaxReals); id++ {
		if err := b.objs.Reals.Lookup(id, &def); err != nil {
			return fmt.Errorf("read real %d: %w", id, err)
		}
		vs, ok := byNum[def.VipNum]
		if !ok || def.Addr == ([4]uint32{}) {
			continue // never used, or retired
		}
		r := Real{Addr: addrFromWords(def.Addr, def.Flags&realIPv6 != 0)}
		if def.Flags&realDown != 0 {
			r.State = Down
		}
		if _, dup := vs.reals[r.Addr]; dup {
			// Two ids for one real: keep the first, retire the other.
			if err := b.retireReal(id); err != nil {
				return err
			}
			continue
		}
		b.realIDs.take(id)
		vs.reals[r.Addr] = &realState{Real: r, id: id, adopted: true}
	}

	// vip_addrs is derived state: make it match what was adopted.
	var addrKey bpf.BalancerVipKey
	var refs uint32
	var stale []bpf.BalancerVipKey
	ai := b.objs.VipAddrs.Iterate()
	for ai.Next(&addrKey, &refs) {
		if b.addrRefs[addrFromWords(addrKey.Addr, addrKey.Family == 6)] == 0 {
			stale = append(stale, addrKey)
		}
	}
	if err := ai.Err(); err != nil {
		return fmt.Errorf("read vip addresses: %w", err)
	}
	for _, k := range stale {
		if err := b.objs.VipAddrs.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove stale vip address: %w", err)
		}
	}
	return nil
}

// Adopted reports whether the balancer took over pinned state at start.
func (b *Balancer) Adopted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adopted
}

// RemovePins deletes everything pinned under dir (maps, links) and the
// directory itself. Programs and maps stay alive while something still
// holds them: an attached link keeps forwarding until it is removed too.
// Removing what is not there is not an error.
func RemovePins(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pin directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		// A pinned link is detached first: dropping its last reference by
		// unlinking the pin detaches it only later, asynchronously, and
		// the caller (vipcastd --cleanup, package removal) must be able to
		// rely on the program being gone when this returns.
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
				errs = append(errs, fmt.Errorf("detach %s: %w", path, err))
			}
			l.Close()
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// BPFFS is where the kernel's BPF filesystem is normally mounted.
const BPFFS = "/sys/fs/bpf"

// EnsureBPFFS mounts the BPF filesystem at BPFFS unless it is there
// already: pins live there, and minimal hosts do not always mount it.
func EnsureBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFS, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := os.MkdirAll(BPFFS, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", BPFFS, err)
	}
	if err := unix.Mount("bpf", BPFFS, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount the BPF filesystem at %s: %w", BPFFS, err)
	}
	return nil
}
