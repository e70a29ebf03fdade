package lb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf"

	"vipcast/bpf"
)

// HealthcheckConfig sets up the healthcheck encapsulation program.
type HealthcheckConfig struct {
	MaxMarks int // default 4096
	// SourceV4 and SourceV6 are the outer sources of encapsulated checks:
	// the LB's own addresses, to which the reals reply directly.
	SourceV4, SourceV6 netip.Addr
	// LocalMAC is the source MAC of encapsulated checks (the interface's).
	LocalMAC   net.HardwareAddr
	GatewayMAC net.HardwareAddr
	// RedirectIfindex, when set, sends encapsulated checks out of that
	// interface (for a program attached elsewhere than the LB's uplink).
	RedirectIfindex int
}

// Healthcheck owns the TC program that puts marked health-check packets
// into the tunnel of the real the mark names.
type Healthcheck struct {
	objs bpf.HealthcheckObjects

	mu    sync.Mutex
	cfg   HealthcheckConfig
	marks map[uint32]netip.Addr
}

// Mark is one somark → real mapping.
type Mark struct {
	Mark uint32
	Real netip.Addr
}

// HealthcheckStats are the program's counters, summed over CPUs.
type HealthcheckStats = bpf.HealthcheckHcStats

// NewHealthcheck loads the healthcheck program (not attached).
func NewHealthcheck(cfg HealthcheckConfig) (*Healthcheck, error) {
	if cfg.MaxMarks == 0 {
		cfg.MaxMarks = defaultMaxReals
	}
	if cfg.MaxMarks < 1 || cfg.MaxMarks > limitReals {
		return nil, fmt.Errorf("max marks: must be 1..%d, got %d: %w", limitReals, cfg.MaxMarks, ErrInvalid)
	}
	if cfg.SourceV4.IsValid() && !cfg.SourceV4.Is4() {
		return nil, fmt.Errorf("hc_source_v4: %s is not an IPv4 address: %w", cfg.SourceV4, ErrInvalid)
	}
	if cfg.SourceV6.IsValid() && (!cfg.SourceV6.Is6() || cfg.SourceV6.Is4In6()) {
		return nil, fmt.Errorf("hc_source_v6: %s is not an IPv6 address: %w", cfg.SourceV6, ErrInvalid)
	}
	for name, mac := range map[string]net.HardwareAddr{"local mac": cfg.LocalMAC, "gateway mac": cfg.GatewayMAC} {
		if mac != nil && len(mac) != 6 {
			return nil, fmt.Errorf("%s %s: must be a 6-byte Ethernet address: %w", name, mac, ErrInvalid)
		}
	}
	spec, err := bpf.LoadHealthcheck()
	if err != nil {
		return nil, fmt.Errorf("load healthcheck spec: %w", err)
	}
	spec.Maps["hc_reals"].MaxEntries = uint32(cfg.MaxMarks)
	h := &Healthcheck{cfg: cfg, marks: make(map[uint32]netip.Addr)}
	if err := spec.LoadAndAssign(&h.objs, nil); err != nil {
		return nil, fmt.Errorf("load healthcheck program into the kernel: %w", err)
	}
	if err := h.writeConfig(); err != nil {
		h.objs.Close()
		return nil, err
	}
	return h, nil
}

// Close releases the program and maps.
func (h *Healthcheck) Close() error { return h.objs.Close() }

// Program is the TC program to attach at the LB interface's egress.
func (h *Healthcheck) Program() *ebpf.Program { return h.objs.VipcastHcEncap }

func (h *Healthcheck) writeConfig() error {
	var c bpf.HealthcheckHcConfig
	if h.cfg.SourceV4.IsValid() {
		c.SrcV4 = addrWords(h.cfg.SourceV4)[0]
	}
	if h.cfg.SourceV6.IsValid() {
		c.SrcV6 = addrWords(h.cfg.SourceV6)
	}
	copy(c.LocalMac[:], h.cfg.LocalMAC)
	copy(c.GwMac[:], h.cfg.GatewayMAC)
	c.RedirectIfindex = uint32(h.cfg.RedirectIfindex)
	if err := h.objs.HcCfg.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write healthcheck config: %w", err)
	}
	return nil
}

// SetGatewayMAC follows the gateway, as Balancer.SetGatewayMAC does.
func (h *Healthcheck) SetGatewayMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("gateway mac %q: must be a 6-byte Ethernet address: %w", mac, ErrInvalid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.cfg.GatewayMAC
	h.cfg.GatewayMAC = slices.Clone(mac)
	if err := h.writeConfig(); err != nil {
		h.cfg.GatewayMAC = old
		return err
	}
	return nil
}

// AddMark maps a socket mark to a real: packets with that mark leave
// encapsulated towards it.
func (h *Healthcheck) AddMark(mark uint32, real netip.Addr) error {
	switch {
	case mark == 0:
		return fmt.Errorf("mark 0: marks start at 1 (0 means unmarked): %w", ErrInvalid)
	case !real.IsValid() || real.IsUnspecified() || real.IsMulticast() || real.Zone() != "" || real.Is4In6():
		return fmt.Errorf("mark %d: real %s: must be a plain unicast address: %w", mark, real, ErrInvalid)
	case real.Is4() && !h.cfg.SourceV4.IsValid():
		return fmt.Errorf("mark %d: real %s: no IPv4 healthcheck source address is configured (hc_source_v4): %w", mark, real, ErrInvalid)
	case real.Is6() && !h.cfg.SourceV6.IsValid():
		return fmt.Errorf("mark %d: real %s: no IPv6 healthcheck source address is configured (hc_source_v6): %w", mark, real, ErrInvalid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.marks[mark]; ok {
		return fmt.Errorf("mark %d: already maps to %s: %w", mark, cur, ErrExists)
	}
	if len(h.marks) >= h.cfg.MaxMarks {
		return fmt.Errorf("mark %d: %d marks configured, the limit: %w", mark, h.cfg.MaxMarks, ErrFull)
	}
	v := bpf.HealthcheckHcReal{Addr: addrWords(real)}
	if real.Is6() {
		v.Flags = realIPv6
	}
	if err := h.objs.HcReals.Update(mark, &v, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("mark %d: write: %w", mark, err)
	}
	h.marks[mark] = real
	return nil
}

// DelMark removes a mapping.
func (h *Healthcheck) DelMark(mark uint32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.marks[mark]; !ok {
		return fmt.Errorf("mark %d: %w", mark, ErrNotFound)
	}
	if err := h.objs.HcReals.Delete(mark); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("mark %d: delete: %w", mark, err)
	}
	delete(h.marks, mark)
	return nil
}

// Marks lists the mappings by mark.
func (h *Healthcheck) Marks() []Mark {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Mark, 0, len(h.marks))
	for m, r := range h.marks {
		out = append(out, Mark{Mark: m, Real: r})
	}
	slices.SortFunc(out, func(a, b Mark) int { return int(int64(a.Mark) - int64(b.Mark)) })
	return out
}

// Stats reads the program's counters.
func (h *Healthcheck) Stats() (HealthcheckStats, error) {
	var per []bpf.HealthcheckHcStats
	if err := h.objs.HcCounters.Lookup(uint32(0), &per); err != nil {
		return HealthcheckStats{}, fmt.Errorf("read healthcheck stats: %w", err)
	}
	var sum HealthcheckStats
	for _, s := range per {
		sum.Encapsulated += s.Encapsulated
		sum.NoMark += s.NoMark
		sum.UnknownMark += s.UnknownMark
		sum.NotIp += s.NotIp
		sum.Errors += s.Errors
	}
	return sum, nil
}
