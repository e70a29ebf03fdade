package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"vipcast/lb"
	"vipcast/lb/maglev"
)

// The controller is the API server's Dataplane: live changes go into the
// desired state, and from there, combined with health, into the kernel.

var _ Dataplane = (*controller)(nil)

func adminOf(s lb.RealState) adminState {
	switch s {
	case lb.Draining:
		return adminDrain
	case lb.Down:
		return adminDisabled
	}
	return adminUp
}

func (a adminState) realState() lb.RealState {
	switch a {
	case adminDrain:
		return lb.Draining
	case adminDisabled:
		return lb.Down
	}
	return lb.Up
}

// change copies the desired state, lets edit change the copy, and applies
// it; on error the old desired state stays.
func (c *controller) change(edit func(map[lb.VIPKey]*wantVIP) error) error {
	c.mu.Lock()
	next := cloneWant(c.vips)
	if err := edit(next); err != nil {
		c.mu.Unlock()
		return err
	}
	old := c.vips
	_, err := c.applyLocked(next)
	if err != nil {
		// Put back what was there; the data plane validated before it
		// changed anything, so this mostly re-asserts the old state.
		_, _ = c.applyLocked(old)
	}
	c.mu.Unlock()
	c.notify()
	return err
}

func cloneWant(in map[lb.VIPKey]*wantVIP) map[lb.VIPKey]*wantVIP {
	out := make(map[lb.VIPKey]*wantVIP, len(in))
	for k, w := range in {
		cp := *w
		cp.reals = make(map[netip.Addr]*wantReal, len(w.reals))
		for a, r := range w.reals {
			rc := *r
			cp.reals[a] = &rc
		}
		out[k] = &cp
	}
	return out
}

func (c *controller) AddVIP(v lb.VIP) error {
	// lb validates the key and flags; check it here too so the error comes
	// before anything is touched.
	if _, err := lb.ParseVIPKey(v.Key.String()); err != nil {
		return err
	}
	if v.RingSize == 0 {
		v.RingSize = maglev.DefaultSize
	}
	return c.change(func(m map[lb.VIPKey]*wantVIP) error {
		if _, ok := m[v.Key]; ok {
			return fmt.Errorf("vip %s: %w", v.Key, lb.ErrExists)
		}
		m[v.Key] = &wantVIP{vip: v, check: c.defCheck, moveFlows: c.defMoveFlows, route: c.defRoute, reals: map[netip.Addr]*wantReal{}}
		return nil
	})
}

func (c *controller) DelVIP(k lb.VIPKey) error {
	return c.change(func(m map[lb.VIPKey]*wantVIP) error {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
		}
		delete(m, k)
		return nil
	})
}

func (c *controller) SetVIPFlags(k lb.VIPKey, f lb.VIPFlags) error {
	return c.change(func(m map[lb.VIPKey]*wantVIP) error {
		w, ok := m[k]
		if !ok {
			return fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
		}
		w.vip.Flags = f
		return nil
	})
}

func (c *controller) AddReal(k lb.VIPKey, r lb.Real) error {
	return c.change(func(m map[lb.VIPKey]*wantVIP) error {
		w, ok := m[k]
		if !ok {
			return fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
		}
		if _, ok := w.reals[r.Addr]; ok {
			return fmt.Errorf("vip %s: real %s: %w", k, r.Addr, lb.ErrExists)
		}
		w.reals[r.Addr] = &wantReal{addr: r.Addr, weight: r.Weight, admin: adminOf(r.State), check: w.check, moveFlows: w.moveFlows}
		return nil
	})
}

func (c *controller) UpdateReal(k lb.VIPKey, r lb.Real) error {
	return c.change(func(m map[lb.VIPKey]*wantVIP) error {
		w, ok := m[k]
		if !ok {
			return fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
		}
		cur, ok := w.reals[r.Addr]
		if !ok {
			return fmt.Errorf("vip %s: real %s: %w", k, r.Addr, lb.ErrNotFound)
		}
		cur.weight, cur.admin = r.Weight, adminOf(r.State)
		return nil
	})
}

func (c *controller) DelReal(k lb.VIPKey, addr netip.Addr) error {
	return c.change(func(m map[lb.VIPKey]*wantVIP) error {
		w, ok := m[k]
		if !ok {
			return fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
		}
		if _, ok := w.reals[addr]; !ok {
			return fmt.Errorf("vip %s: real %s: %w", k, addr, lb.ErrNotFound)
		}
		delete(w.reals, addr)
		return nil
	})
}

// VIPs is the desired state as the operator sees it: weights and the
// operator's state (a disabled real shows as down).
func (c *controller) VIPs() []lb.VIPInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []lb.VIPInfo
	for _, k := range sortedKeys(c.vips) {
		w := c.vips[k]
		info := lb.VIPInfo{VIP: w.vip}
		for _, r := range w.reals {
			info.Reals = append(info.Reals, lb.Real{Addr: r.addr, Weight: r.weight, State: r.admin.realState()})
		}
		sortByAddr(info.Reals)
		out = append(out, info)
	}
	return out
}

func sortByAddr(r []lb.Real) {
	slices.SortFunc(r, func(a, b lb.Real) int { return a.Addr.Compare(b.Addr) })
}

func (c *controller) Stats() (lb.Stats, error)                 { return c.dp.Stats() }
func (c *controller) VIPStats(k lb.VIPKey) (lb.Counter, error) { return c.dp.VIPStats(k) }
func (c *controller) RealStats(k lb.VIPKey, a netip.Addr) (lb.Counter, error) {
	return c.dp.RealStats(k, a)
}
func (c *controller) SetGatewayMAC(m net.HardwareAddr) error { return c.dp.SetGatewayMAC(m) }
