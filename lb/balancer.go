// Package lb drives vipcast's XDP balancer from Go: it loads the BPF
// objects, keeps the VIP/real tables and Maglev rings in the kernel in step
// with what it is told, and reads the counters back.
//
// Every method validates its whole input before it touches a map, and
// undoes what it wrote if a later step fails: on error the kernel state is
// as it was.
package lb

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"vipcast/bpf"
	"vipcast/lb/maglev"
)

// Balancer owns the balancer's BPF program and maps.
type Balancer struct {
	cfg  Config
	objs bpf.BalancerObjects

	mu        sync.Mutex
	vips      map[VIPKey]*vipState
	addrRefs  map[netip.Addr]int // services per VIP address, mirrors vip_addrs
	vipNums   *idPool
	realIDs   *idPool
	ncpu      int
	gatewayOK bool
	adopted   bool       // state came from pinned maps
	connKey   [12]uint32 // secret keys of the connection tables' set index and IPv6 fingerprint (lb_config.conn_key)
}

type vipState struct {
	VIP
	num   uint32
	reals map[netip.Addr]*realState
}

type realState struct {
	Real
	id      uint32
	adopted bool // found in pinned maps; weight unknown until SetReals
}

// New loads the balancer program and its maps, sized by cfg. The program
// is not attached to anything; see Program.
func New(cfg Config) (*Balancer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	for i, cpu := range cfg.ForwardingCPUs {
		if cpu < 0 || cpu >= ncpu {
			return nil, fmt.Errorf("forwarding_cores[%d]: CPU %d does not exist (this host has CPUs 0..%d): %w",
				i, cpu, ncpu-1, ErrInvalid)
		}
		if slices.Index(cfg.ForwardingCPUs, cpu) != i {
			return nil, fmt.Errorf("forwarding_cores[%d]: CPU %d listed twice: %w", i, cpu, ErrInvalid)
		}
	}

	spec, err := bpf.LoadBalancer()
	if err != nil {
		return nil, fmt.Errorf("load balancer spec: %w", err)
	}
	sizes := map[string]int{
		"vips":           cfg.MaxVIPs,
		"vip_addrs":      cfg.MaxVIPs,
		"rings":          cfg.MaxVIPs,
		"vip_stats":      cfg.MaxVIPs,
		"reals":          cfg.MaxReals,
		"real_stats":     cfg.MaxReals,
		"conn_tables":    ncpu,
		"fallback_conns": cfg.FallbackTableSize,
	}
	for name, n := range sizes {
		m, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("balancer object has no map %q", name)
		}
		m.MaxEntries = uint32(n)
	}

	b := &Balancer{
		cfg:      cfg,
		vips:     make(map[VIPKey]*vipState),
		addrRefs: make(map[netip.Addr]int),
		vipNums:  newIDPool(0, uint32(cfg.MaxVIPs)),
		realIDs:  newIDPool(1, uint32(cfg.MaxReals)), // id 0 marks an empty slot
		ncpu:     ncpu,
	}
	// Inner array maps must match the template's size and flags, NUMA flag
	// included.
	connTmpl := spec.Maps["conn_tables"].InnerMap
	if connTmpl.ValueSize != uint32(binarySize[connSet]()) {
		return nil, fmt.Errorf("balancer object: connection-table sets are %d bytes, package lb expects %d (rebuild both together)",
			connTmpl.ValueSize, binarySize[connSet]())
	}
	connTmpl.MaxEntries = b.connSets()
	if cfg.NUMANodes != nil {
		connTmpl.Flags |= unix.BPF_F_NUMA_NODE
	}
	var opts *ebpf.CollectionOptions
	if cfg.PinPath != "" {
		if err := os.MkdirAll(cfg.PinPath, 0o700); err != nil {
			return nil, fmt.Errorf("pin directory %s: %w", cfg.PinPath, err)
		}
		for name, m := range spec.Maps {
			if !strings.HasPrefix(name, ".") {
				m.Pinning = ebpf.PinByName
			}
		}
		opts = &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinPath}}
	}
	if err := spec.LoadAndAssign(&b.objs, opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("the maps pinned under %s do not fit this configuration or version "+
				"(max_vips, max_reals, fallback_lru_size and the map layout must not change across a restart; "+
				"restore the old settings, or run `vipcastd --cleanup` to start empty, which drops established flows): %w",
				cfg.PinPath, err)
		}
		return nil, fmt.Errorf("load balancer into the kernel: %w", err)
	}
	if err := b.start(); err != nil {
		b.objs.Close()
		return nil, err
	}
	return b, nil
}

// start adopts what earlier runs left in pinned maps, then makes sure every
// forwarding CPU has a table and the config is written.
func (b *Balancer) start() error {
	var cur bpf.BalancerLbConfig
	if err := b.objs.Config.Lookup(uint32(0), &cur); err != nil {
		return fmt.Errorf("read balancer config: %w", err)
	}
	gw := b.cfg.GatewayMAC
	// A new data plane gets a new secret key for its connection tables'
	// set index; an adopted one keeps the key its tables were filled with.
	b.connKey = cur.ConnKey
	if cur.Layout == 0 {
		if err := randomKey(b.connKey[:]); err != nil {
			return err
		}
	}
	if cur.Layout != 0 {
		if cur.Layout != LayoutVersion {
			return fmt.Errorf("the maps pinned under %s have layout version %d, this vipcastd uses %d: "+
				"it cannot adopt them; run `vipcastd --cleanup` (drops established flows) or run the matching version",
				b.cfg.PinPath, cur.Layout, LayoutVersion)
		}
		if err := b.adopt(); err != nil {
			return fmt.Errorf("adopt state pinned under %s: %w", b.cfg.PinPath, err)
		}
		b.adopted = true
		// Keep forwarding to the gateway the last run knew until told otherwise.
		if gw == nil && !isZeroMAC(cur.GwMac[:]) {
			gw = slices.Clone(net.HardwareAddr(cur.GwMac[:]))
		}
	}
	if err := b.createConnTables(); err != nil {
		return err
	}
	if err := b.writeConfig(gw); err != nil {
		return err
	}
	b.cfg.GatewayMAC = gw
	return nil
}

// Close releases the program and maps (the kernel keeps whatever is
// attached or pinned).
func (b *Balancer) Close() error { return b.objs.Close() }

// Program is the XDP program to attach or to put in a root program's slot.
func (b *Balancer) Program() *ebpf.Program { return b.objs.VipcastBalancer }

// randomKey draws the connection tables' secret key.
func randomKey(key []uint32) error {
	raw := make([]byte, 4*len(key))
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("draw a random key for the connection tables: %w", err)
	}
	for i := range key {
		key[i] = binary.NativeEndian.Uint32(raw[4*i:])
	}
	return nil
}

// connSets is the number of sets in each per-CPU connection table: the
// CPU's share of lru_size, rounded up to whole sets.
func (b *Balancer) connSets() uint32 {
	per := b.cfg.ConnTableSize / len(b.cfg.ForwardingCPUs)
	return uint32((per + connWays - 1) / connWays)
}

// createConnTables gives each forwarding CPU its own table, allocated on
// that CPU's NUMA node when one is configured. Tables an earlier run left
// are checked first, before anything changes: the program indexes every
// table by the set count this run writes, and the kernel accepts only
// tables like the first one the pinned outer map was given.
func (b *Balancer) createConnTables() error {
	sets := b.connSets()
	have := map[int]bool{}
	for cpu := range b.ncpu {
		var existing *ebpf.Map
		if err := b.objs.ConnTables.Lookup(uint32(cpu), &existing); err != nil {
			continue
		}
		n := existing.MaxEntries()
		existing.Close()
		if n != sets {
			return fmt.Errorf("the pinned connection table of CPU %d has %d sets, this configuration needs %d "+
				"(lru_size and forwarding_cores must not change across a restart; restore them, or run "+
				"`vipcastd --cleanup` to start empty, which drops established flows): %w", cpu, n, sets, ErrInvalid)
		}
		have[cpu] = true
	}
	for cpu := range have {
		if !slices.Contains(b.cfg.ForwardingCPUs, cpu) {
			// No longer a forwarding core: it uses the fallback table now.
			if err := b.objs.ConnTables.Delete(uint32(cpu)); err != nil {
				return fmt.Errorf("remove the connection table of CPU %d, no longer a forwarding core: %w", cpu, err)
			}
		}
	}
	for i, cpu := range b.cfg.ForwardingCPUs {
		if have[cpu] {
			continue // adopted: its flows survive the restart
		}
		spec := &ebpf.MapSpec{
			Name:       "conn_cpu",
			Type:       ebpf.Array,
			KeySize:    4,
			ValueSize:  uint32(binarySize[connSet]()),
			MaxEntries: sets,
			Flags:      unix.BPF_F_MMAPABLE,
		}
		if b.cfg.NUMANodes != nil {
			spec.Flags |= unix.BPF_F_NUMA_NODE
			spec.NumaNode = uint32(b.cfg.NUMANodes[i])
		}
		m, err := ebpf.NewMap(spec)
		if err != nil {
			return fmt.Errorf("create connection table for CPU %d (%d sets of %d): %w", cpu, sets, connWays, err)
		}
		err = b.objs.ConnTables.Put(uint32(cpu), m)
		m.Close() // the outer map holds its own reference
		if err != nil {
			return fmt.Errorf("install connection table for CPU %d (if numa_nodes changed across a restart, "+
				"restore it or run `vipcastd --cleanup`): %w", cpu, err)
		}
	}
	return nil
}

func (b *Balancer) writeConfig(gw net.HardwareAddr) error {
	var c bpf.BalancerLbConfig
	copy(c.GwMac[:], gw)
	c.TunnelMtu = uint16(b.cfg.TunnelMTU)
	v4 := b.cfg.SourcePrefixV4.Addr().As4()
	copy(c.V4Prefix[:], v4[:2])
	v6 := b.cfg.SourcePrefixV6.Addr().As16()
	copy(c.V6Prefix[:], v6[:12])
	if !b.cfg.NoICMPTooBig {
		c.Flags |= cfgICMPTooBig
	}
	c.Layout = LayoutVersion
	c.ConnSets = b.connSets()
	c.ConnKey = b.connKey
	if err := b.objs.Config.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write balancer config: %w", err)
	}
	b.gatewayOK = len(gw) == 6 && !isZeroMAC(gw)
	return nil
}

// SetGatewayMAC sets the next hop of every encapsulated frame.
func (b *Balancer) SetGatewayMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("gateway mac %q: must be a 6-byte Ethernet address: %w", mac, ErrInvalid)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.writeConfig(mac); err != nil {
		return err
	}
	b.cfg.GatewayMAC = slices.Clone(mac)
	return nil
}

// GatewayMAC returns the MAC in use, or nil while none is set.
func (b *Balancer) GatewayMAC() net.HardwareAddr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.gatewayOK {
		return nil
	}
	return slices.Clone(b.cfg.GatewayMAC)
}

// AddVIP adds a service with no reals (its traffic is dropped until a real is up).
func (b *Balancer) AddVIP(v VIP) error {
	if err := v.Key.validate(); err != nil {
		return err
	}
	if v.RingSize == 0 {
		v.RingSize = maglev.DefaultSize
	}
	if err := maglev.ValidSize(v.RingSize); err != nil {
		return fmt.Errorf("vip %s: ring_size: %v: %w", v.Key, err, ErrInvalid)
	}
	if err := validFlags(v.Key, v.Flags); err != nil {
		return err
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.vips[v.Key]; ok {
		return fmt.Errorf("vip %s: %w", v.Key, ErrExists)
	}
	num, ok := b.vipNums.get()
	if !ok {
		return fmt.Errorf("vip %s: %d VIPs configured, the limit (max_vips): %w", v.Key, b.cfg.MaxVIPs, ErrFull)
	}
	vs := &vipState{VIP: v, num: num, reals: make(map[netip.Addr]*realState)}
	undo, err := b.writeVIP(vs)
	if err != nil {
		b.vipNums.put(num)
		return fmt.Errorf("vip %s: %w", v.Key, err)
	}
	_ = undo
	b.vips[v.Key] = vs
	return nil
}

func validFlags(k VIPKey, f VIPFlags) error {
	if f&^allFlags != 0 {
		return fmt.Errorf("vip %s: unknown flags 0x%x: %w", k, uint32(f&^allFlags), ErrInvalid)
	}
	if f&FlagDportOnly != 0 && f&FlagNoSrcPort != 0 {
		return fmt.Errorf("vip %s: flags dport_only and no_src_port exclude each other: %w", k, ErrInvalid)
	}
	return nil
}

// writeVIP programs a new VIP: stats zeroed, address registered, then the
// service entry that makes the program match it. The returned function
// undoes it all.
func (b *Balancer) writeVIP(vs *vipState) (func(), error) {
	if err := b.zeroCounter(b.objs.VipStats, vs.num); err != nil {
		return nil, err
	}
	addrKey := vipAddrKey(vs.Key.Addr)
	refs := b.addrRefs[vs.Key.Addr]
	if refs == 0 {
		if err := b.objs.VipAddrs.Put(&addrKey, uint32(1)); err != nil {
			return nil, fmt.Errorf("register address: %w", err)
		}
	}
	key, meta := vipKey(vs.Key), vipMeta(vs)
	if err := b.objs.Vips.Update(&key, &meta, ebpf.UpdateNoExist); err != nil {
		if refs == 0 {
			_ = b.objs.VipAddrs.Delete(&addrKey)
		}
		return nil, fmt.Errorf("write service: %w", err)
	}
	b.addrRefs[vs.Key.Addr] = refs + 1
	return func() { b.removeVIP(vs) }, nil
}

// removeVIP takes a VIP out of the kernel in the order that keeps every
// packet consistent: first it stops matching, then its ring and reals go.
func (b *Balancer) removeVIP(vs *vipState) error {
	var errs []error
	key := vipKey(vs.Key)
	if err := b.objs.Vips.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete service: %w", err))
	}
	if err := b.objs.Rings.Delete(vs.num); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete ring: %w", err))
	}
	for _, rs := range vs.reals {
		if err := b.retireReal(rs.id); err != nil {
			errs = append(errs, err)
		}
		b.realIDs.put(rs.id)
	}
	b.addrRefs[vs.Key.Addr]--
	if b.addrRefs[vs.Key.Addr] <= 0 {
		delete(b.addrRefs, vs.Key.Addr)
		addrKey := vipAddrKey(vs.Key.Addr)
		if err := b.objs.VipAddrs.Delete(&addrKey); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("unregister address: %w", err))
		}
	}
	b.vipNums.put(vs.num)
	return errors.Join(errs...)
}

// DelVIP removes a service and all its reals.
func (b *Balancer) DelVIP(k VIPKey) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.vips[k]
	if !ok {
		return fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	delete(b.vips, k)
	if err := b.removeVIP(vs); err != nil {
		return fmt.Errorf("vip %s: %w", k, err)
	}
	return nil
}

// SetVIPFlags replaces a VIP's flags. Established flows keep their reals
// only as far as the new flags still find their table entries.
func (b *Balancer) SetVIPFlags(k VIPKey, flags VIPFlags) error {
	if err := validFlags(k, flags); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.vips[k]
	if !ok {
		return fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	old := vs.Flags
	vs.Flags = flags
	key, meta := vipKey(k), vipMeta(vs)
	if err := b.objs.Vips.Update(&key, &meta, ebpf.UpdateExist); err != nil {
		vs.Flags = old
		return fmt.Errorf("vip %s: write flags: %w", k, err)
	}
	return nil
}

// AddReal adds a real to a VIP and rebuilds the VIP's ring.
func (b *Balancer) AddReal(k VIPKey, r Real) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.vips[k]
	if !ok {
		return fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	if _, ok := vs.reals[r.Addr]; ok && r.Addr.IsValid() {
		return fmt.Errorf("vip %s: real %s: %w", k, r.Addr, ErrExists)
	}
	return b.setReals(vs, append(currentReals(vs), r))
}

// UpdateReal changes a real's weight and state.
func (b *Balancer) UpdateReal(k VIPKey, r Real) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.vips[k]
	if !ok {
		return fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	if _, ok := vs.reals[r.Addr]; !ok {
		return fmt.Errorf("vip %s: real %s: %w", k, r.Addr, ErrNotFound)
	}
	reals := currentReals(vs)
	for i := range reals {
		if reals[i].Addr == r.Addr {
			reals[i] = r
		}
	}
	return b.setReals(vs, reals)
}

// DelReal removes a real from a VIP.
func (b *Balancer) DelReal(k VIPKey, addr netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.vips[k]
	if !ok {
		return fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	if _, ok := vs.reals[addr]; !ok {
		return fmt.Errorf("vip %s: real %s: %w", k, addr, ErrNotFound)
	}
	reals := slices.DeleteFunc(currentReals(vs), func(r Real) bool { return r.Addr == addr })
	return b.setReals(vs, reals)
}

// SetReals makes a VIP's reals exactly the given set, with one ring write:
// what a reload or an adopting restart uses, so that no intermediate ring
// ever moves flows.
func (b *Balancer) SetReals(k VIPKey, reals []Real) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.vips[k]
	if !ok {
		return fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	return b.setReals(vs, slices.Clone(reals))
}

func currentReals(vs *vipState) []Real {
	out := make([]Real, 0, len(vs.reals))
	for _, rs := range vs.reals {
		out = append(out, rs.Real)
	}
	return out
}

// setReals validates the whole set, then applies it in the order that
// keeps every packet consistent: reals that will be in the ring are usable
// before the ring names them, and reals that leave or go down change only
// after the new ring is in place. On error nothing has changed.
func (b *Balancer) setReals(vs *vipState, reals []Real) error {
	k := vs.Key
	seen := make(map[netip.Addr]bool, len(reals))
	for _, r := range reals {
		if err := validReal(k, r); err != nil {
			return err
		}
		if seen[r.Addr] {
			return fmt.Errorf("vip %s: real %s: listed twice: %w", k, r.Addr, ErrInvalid)
		}
		seen[r.Addr] = true
	}

	// Allocate ids for newcomers first: running out must change nothing.
	var added []*realState
	undoAlloc := func() {
		for _, rs := range added {
			b.realIDs.put(rs.id)
		}
	}
	for _, r := range reals {
		if _, ok := vs.reals[r.Addr]; ok {
			continue
		}
		id, ok := b.realIDs.get()
		if !ok {
			undoAlloc()
			return fmt.Errorf("vip %s: real %s: %d reals configured, the limit of max_reals = %d (one id is reserved): %w",
				k, r.Addr, b.cfg.MaxReals-1, b.cfg.MaxReals, ErrFull)
		}
		added = append(added, &realState{Real: r, id: id})
	}
	for _, rs := range added {
		if err := b.zeroCounter(b.objs.RealStats, rs.id); err != nil {
			undoAlloc()
			return fmt.Errorf("vip %s: real %s: %w", k, rs.Addr, err)
		}
	}

	old := vs.reals
	next := make(map[netip.Addr]*realState, len(reals))
	for _, rs := range added {
		next[rs.Addr] = rs
	}
	for _, r := range reals {
		if rs, ok := old[r.Addr]; ok {
			next[r.Addr] = &realState{Real: r, id: rs.id}
		}
	}
	restore := func(err error) error {
		vs.reals = old
		for _, rs := range old {
			_ = b.writeReal(vs, rs)
		}
		for _, rs := range added {
			_ = b.retireReal(rs.id)
		}
		undoAlloc()
		return fmt.Errorf("vip %s: %w", k, err)
	}

	// 1. Entries that the new ring may name, or that stop being down.
	for addr, rs := range next {
		prev, existed := old[addr]
		if rs.State != Down && (!existed || prev.State == Down) {
			if err := b.writeReal(vs, rs); err != nil {
				return restore(err)
			}
		}
	}
	// 2. The ring.
	vs.reals = next
	if err := b.writeRing(vs); err != nil {
		return restore(err)
	}
	// 3. Entries that go down, or leave. The ring no longer names them, so
	// a failure here leaves forwarding correct; report it all the same.
	var errs []error
	for addr, rs := range next {
		if prev, existed := old[addr]; rs.State == Down && (!existed || prev.State != Down) {
			errs = append(errs, b.writeReal(vs, rs))
		}
	}
	for addr, rs := range old {
		if _, stays := next[addr]; !stays {
			errs = append(errs, b.retireReal(rs.id))
			b.realIDs.put(rs.id)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vip %s: %w", k, err)
	}
	return nil
}

func validReal(k VIPKey, r Real) error {
	switch {
	case !r.Addr.IsValid() || r.Addr.IsUnspecified() || r.Addr.IsMulticast() || r.Addr.Zone() != "":
		return fmt.Errorf("vip %s: real %s: must be a unicast address: %w", k, r.Addr, ErrInvalid)
	case r.Addr.Is4In6():
		return fmt.Errorf("vip %s: real %s: use the plain IPv4 form: %w", k, r.Addr, ErrInvalid)
	case k.Addr.Is6() && r.Addr.Is4():
		return fmt.Errorf("vip %s: real %s: an IPv6 VIP needs IPv6 reals (IPv6 cannot be carried in IPv4 here): %w",
			k, r.Addr, ErrInvalid)
	case r.Weight > MaxWeight:
		return fmt.Errorf("vip %s: real %s: weight must be 0..%d, got %d: %w", k, r.Addr, MaxWeight, r.Weight, ErrInvalid)
	case r.State > Down:
		return fmt.Errorf("vip %s: real %s: unknown state %d: %w", k, r.Addr, r.State, ErrInvalid)
	}
	return nil
}

func (b *Balancer) writeReal(vs *vipState, rs *realState) error {
	def := bpf.BalancerRealDef{Addr: addrWords(rs.Addr), VipNum: vs.num}
	if rs.Addr.Is6() {
		def.Flags |= realIPv6
	}
	if rs.State == Down {
		def.Flags |= realDown
	}
	if err := b.objs.Reals.Put(rs.id, &def); err != nil {
		return fmt.Errorf("write real %d: %w", rs.id, err)
	}
	return nil
}

// retireReal makes an id's entry match no VIP, so that connection-table
// entries still naming it are re-placed rather than followed.
func (b *Balancer) retireReal(id uint32) error {
	def := bpf.BalancerRealDef{VipNum: ^uint32(0), Flags: realDown}
	if err := b.objs.Reals.Put(id, &def); err != nil {
		return fmt.Errorf("retire real %d: %w", id, err)
	}
	return nil
}

// writeRing builds the VIP's ring from its up reals and swaps it in whole.
func (b *Balancer) writeRing(vs *vipState) error {
	members, _ := ringMembers(vs)
	ring, err := maglev.Build(members, vs.RingSize)
	if err != nil {
		return fmt.Errorf("build ring: %w", err)
	}
	if ring == nil {
		if err := b.objs.Rings.Delete(vs.num); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove empty ring: %w", err)
		}
		return nil
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "ring",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: vs.RingSize,
		Flags:      unix.BPF_F_INNER_MAP | unix.BPF_F_MMAPABLE,
	})
	if err != nil {
		return fmt.Errorf("create ring of %d slots: %w", vs.RingSize, err)
	}
	defer m.Close()
	if err := fillRing(m, ring); err != nil {
		return err
	}
	if err := b.objs.Rings.Put(vs.num, m); err != nil {
		return fmt.Errorf("install ring: %w", err)
	}
	return nil
}

// VIPs lists the configured services with their reals, sorted.
func (b *Balancer) VIPs() []VIPInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]VIPInfo, 0, len(b.vips))
	for _, vs := range b.vips {
		info := VIPInfo{VIP: vs.VIP}
		for _, rs := range vs.reals {
			info.Reals = append(info.Reals, rs.Real)
		}
		sortReals(info.Reals)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, c VIPInfo) int { return compareKeys(a.Key, c.Key) })
	return out
}

func compareKeys(a, c VIPKey) int {
	if r := a.Addr.Compare(c.Addr); r != 0 {
		return r
	}
	if a.Port != c.Port {
		return int(a.Port) - int(c.Port)
	}
	return int(a.Proto) - int(c.Proto)
}

func (b *Balancer) zeroCounter(m *ebpf.Map, idx uint32) error {
	if err := m.Put(idx, make([]bpf.BalancerCounter, b.ncpu)); err != nil {
		return fmt.Errorf("reset counters %d: %w", idx, err)
	}
	return nil
}

// ConnTable describes one CPU's connection table.
type ConnTable struct {
	CPU     int
	Node    int // NUMA node, -1 when not set
	Entries int
}

// ConnTables lists the per-CPU connection tables and the kernel memory
// they take (arrays: allocated whole when created).
func (b *Balancer) ConnTables() (tables []ConnTable, bytes uint64) {
	sets := b.connSets()
	for i, cpu := range b.cfg.ForwardingCPUs {
		node := -1
		if b.cfg.NUMANodes != nil {
			node = b.cfg.NUMANodes[i]
		}
		tables = append(tables, ConnTable{CPU: cpu, Node: node, Entries: int(sets) * connWays})
		bytes += uint64(sets) * uint64(binarySize[connSet]())
	}
	return tables, bytes
}

// ConnTableUse counts the entries in use in one CPU's connection table. It
// reads the whole table through its memory mapping (a few milliseconds per
// million entries): for diagnostics and tests, not for every scrape.
func (b *Balancer) ConnTableUse(cpu int) (used, capacity int, err error) {
	var m *ebpf.Map
	if err := b.objs.ConnTables.Lookup(uint32(cpu), &m); err != nil {
		return 0, 0, fmt.Errorf("CPU %d has no connection table: %w", cpu, err)
	}
	defer m.Close()
	mem, err := m.Memory()
	if err != nil {
		return 0, 0, fmt.Errorf("map connection table of CPU %d: %w", cpu, err)
	}
	setSize := binarySize[connSet]()
	slotSize := setSize / connWays
	realOff := int(unsafe.Offsetof(connSlot{}.RealID))
	buf := make([]byte, setSize*4096)
	sets := int(m.MaxEntries())
	for first := 0; first < sets; first += 4096 {
		n := min(4096, sets-first)
		if _, err := mem.ReadAt(buf[:n*setSize], int64(first*setSize)); err != nil {
			return 0, 0, fmt.Errorf("read connection table of CPU %d: %w", cpu, err)
		}
		for off := 0; off < n*setSize; off += slotSize {
			if binary.NativeEndian.Uint32(buf[off+realOff:]) != 0 {
				used++
			}
		}
	}
	return used, sets * connWays, nil
}

// fillRing writes a new ring (not yet visible to the program) through its
// memory mapping: an array map's elements are 8-byte aligned, so each u32
// slot takes 8 bytes.
func fillRing(m *ebpf.Map, ring []uint32) error {
	mem, err := m.Memory()
	if err != nil {
		return fmt.Errorf("map ring memory: %w", err)
	}
	const stride = 8
	buf := make([]byte, stride*len(ring))
	for i, id := range ring {
		binary.NativeEndian.PutUint32(buf[i*stride:], id)
	}
	if _, err := mem.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("fill ring: %w", err)
	}
	return nil
}
