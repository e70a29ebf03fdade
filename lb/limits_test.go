package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"vipcast/bpf"
	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
)

// Every table filled to its configured size and one past it: the refusal
// wraps ErrFull and names the limit, nothing changes (in Go or in the
// kernel), the data plane keeps forwarding, and freed room is usable.

// kernelState is what the maps hold, for "nothing changed" checks.
type kernelState struct {
	VIPs     map[bpf.BalancerVipKey]bpf.BalancerVipMeta
	Addrs    map[bpf.BalancerVipKey]uint32
	Reals    map[uint32]bpf.BalancerRealDef
	Rings    map[uint32][]uint32
	RealsUse int // real ids that belong to a VIP
}

func readKernelState(t *testing.T, b *Balancer) kernelState {
	t.Helper()
	s := kernelState{
		VIPs: map[bpf.BalancerVipKey]bpf.BalancerVipMeta{}, Addrs: map[bpf.BalancerVipKey]uint32{},
		Reals: map[uint32]bpf.BalancerRealDef{}, Rings: map[uint32][]uint32{},
	}
	var k bpf.BalancerVipKey
	var meta bpf.BalancerVipMeta
	for it := b.objs.Vips.Iterate(); it.Next(&k, &meta); {
		s.VIPs[k] = meta
	}
	var one uint32
	for it := b.objs.VipAddrs.Iterate(); it.Next(&k, &one); {
		s.Addrs[k] = one
	}
	var id uint32
	var def bpf.BalancerRealDef
	for it := b.objs.Reals.Iterate(); it.Next(&id, &def); {
		if def != (bpf.BalancerRealDef{}) {
			s.Reals[id] = def
		}
		if def.VipNum != ^uint32(0) && def.Addr != [4]uint32{} {
			s.RealsUse++
		}
	}
	for _, meta := range s.VIPs {
		var ring *ebpf.Map
		if err := b.objs.Rings.Lookup(meta.VipNum, &ring); err != nil {
			continue // a VIP without reals has no ring
		}
		slots := make([]uint32, ring.MaxEntries())
		keys := make([]uint32, len(slots))
		var cursor ebpf.MapBatchCursor
		if _, err := ring.BatchLookup(&cursor, keys, slots, nil); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Fatalf("read ring %d: %v", meta.VipNum, err)
		}
		ring.Close()
		s.Rings[meta.VipNum] = slots
	}
	return s
}

func assertUnchanged(t *testing.T, b *Balancer, vips []VIPInfo, kernel kernelState) {
	t.Helper()
	if got := b.VIPs(); !reflect.DeepEqual(got, vips) {
		t.Fatalf("VIPs changed on a refused call:\n before %v\n after  %v", vips, got)
	}
	if got := readKernelState(t, b); !reflect.DeepEqual(got, kernel) {
		t.Fatalf("kernel maps changed on a refused call (%d -> %d services, %d -> %d reals in use)",
			len(kernel.VIPs), len(got.VIPs), kernel.RealsUse, got.RealsUse)
	}
}

func assertFull(t *testing.T, err error, limit string) {
	t.Helper()
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), limit) {
		t.Fatalf("error %v, want ErrFull naming the limit (%q)", err, limit)
	}
}

// realOf sends a new flow (a TCP SYN) to a VIP and returns the real it went
// to (the outer destination), failing unless it was encapsulated.
func realOf(t *testing.T, b *Balancer, vip VIPKey, client string, sport uint16) netip.Addr {
	t.Helper()
	return sendFlow(t, b, Flow{Src: netip.AddrPortFrom(addr(client), sport), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: TCP}, true)
}

// smallVIP adds a VIP with a small ring (the default 65537-slot ring takes
// tens of milliseconds to build, and these tests build hundreds).
func smallVIP(t *testing.T, b *Balancer, key string, reals ...string) VIPKey {
	t.Helper()
	k, err := ParseVIPKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddVIP(VIP{Key: k, RingSize: 1021}); err != nil {
		t.Fatalf("AddVIP %s: %v", k, err)
	}
	for _, r := range reals {
		if err := b.AddReal(k, Real{Addr: addr(r), Weight: 1}); err != nil {
			t.Fatalf("AddReal %s %s: %v", k, r, err)
		}
	}
	return k
}

func actionFor(t *testing.T, b *Balancer, vip VIPKey) uint32 {
	t.Helper()
	act, _ := run(t, b.Program(), ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 1000, vip.Addr.String(), vip.Port, testpkt.TCPSyn)))
	return act
}

func TestLimitVIPs(t *testing.T) {
	const maxVIPs = 64
	b := newTestBalancer(t, Config{MaxVIPs: maxVIPs, MaxReals: 256})
	var keys []VIPKey
	for i := range maxVIPs {
		key := fmt.Sprintf("10.201.%d.1:80/tcp", i)
		if i%4 == 3 {
			key = fmt.Sprintf("[fc00:201:%x::1]:80/tcp", i)
		}
		real := "10.0.1.1"
		if i%2 == 1 {
			real = "fc00::11"
		}
		keys = append(keys, smallVIP(t, b, key, real))
	}
	vips, kernel := b.VIPs(), readKernelState(t, b)
	if len(kernel.VIPs) != maxVIPs || len(kernel.Rings) != maxVIPs {
		t.Fatalf("kernel holds %d services and %d rings, want %d", len(kernel.VIPs), len(kernel.Rings), maxVIPs)
	}

	extra, _ := ParseVIPKey("10.201.250.1:80/tcp")
	assertFull(t, b.AddVIP(VIP{Key: extra}), "64 VIPs configured, the limit (max_vips)")
	// Another port of an address that is already a VIP: full all the same.
	samAddr := VIPKey{Addr: keys[0].Addr, Port: 443, Proto: TCP}
	assertFull(t, b.AddVIP(VIP{Key: samAddr}), "the limit (max_vips)")
	assertUnchanged(t, b, vips, kernel)

	// Every VIP still forwards to its real; the refused one is not a VIP.
	for i, k := range keys {
		want, client := "10.0.1.1", "192.168.1.1"
		if i%2 == 1 {
			want = "fc00::11"
		}
		if k.Addr.Is6() {
			client = "fc00:2::1"
		}
		if got := realOf(t, b, k, client, uint16(2000+i)); got != addr(want) {
			t.Fatalf("VIP %s went to %s, want %s", k, got, want)
		}
	}
	if act := actionFor(t, b, extra); act != xdpPass {
		t.Fatalf("traffic to the refused VIP: action %d, want pass", act)
	}

	// Room freed by a delete is usable at once, and the old VIP is gone.
	if err := b.DelVIP(keys[10]); err != nil {
		t.Fatal(err)
	}
	if err := b.AddVIP(VIP{Key: extra, RingSize: 1021}); err != nil {
		t.Fatalf("add after delete: %v", err)
	}
	if err := b.AddReal(extra, Real{Addr: addr("10.0.1.2"), Weight: 1}); err != nil {
		t.Fatal(err)
	}
	if got := realOf(t, b, extra, "192.168.1.1", 3000); got != addr("10.0.1.2") {
		t.Fatalf("new VIP went to %s", got)
	}
	if act := actionFor(t, b, keys[10]); act != xdpPass {
		t.Fatalf("traffic to the deleted VIP: action %d, want pass", act)
	}
	assertFull(t, b.AddVIP(VIP{Key: keys[10]}), "64 VIPs configured")
}

func TestLimitReals(t *testing.T) {
	// 17 slots: id 0 marks an empty ring slot, so 16 (VIP, real) pairs.
	b := newTestBalancer(t, Config{MaxVIPs: 4, MaxReals: 17})
	a := smallVIP(t, b, "10.202.0.1:80/tcp")
	c := smallVIP(t, b, "[fc00:202::1]:80/tcp")
	var aReals []Real
	for i := range 10 {
		aReals = append(aReals, Real{Addr: addr(fmt.Sprintf("10.0.2.%d", i+1)), Weight: 1})
	}
	if err := b.SetReals(a, aReals); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		// The same addresses on two VIPs: ids are per (VIP, real).
		if err := b.AddReal(c, Real{Addr: addr(fmt.Sprintf("fc00::2:%d", i+1)), Weight: 1}); err != nil {
			t.Fatalf("real %d of the second VIP: %v", i+1, err)
		}
	}
	d := smallVIP(t, b, "10.202.0.2:80/tcp")
	vips, kernel := b.VIPs(), readKernelState(t, b)
	if kernel.RealsUse != 16 {
		t.Fatalf("%d real ids in use in the kernel, want 16", kernel.RealsUse)
	}

	const limit = "16 reals configured, the limit of max_reals = 17 (one id is reserved)"
	// A real address already used by another VIP still needs an id.
	assertFull(t, b.AddReal(d, Real{Addr: addr("10.0.2.1"), Weight: 1}), limit)
	assertFull(t, b.AddReal(c, Real{Addr: addr("fc00::2:99"), Weight: 1}), limit)
	assertFull(t, b.SetReals(a, append(slices.Clone(aReals), Real{Addr: addr("10.0.2.98"), Weight: 1}, Real{Addr: addr("10.0.2.99"), Weight: 1})), limit)
	// Replacing a real needs a fresh id before the old one is freed (ids
	// are reused as late as possible), so a full table refuses that too.
	assertFull(t, b.SetReals(a, append(slices.Clone(aReals[1:]), Real{Addr: addr("10.0.2.99"), Weight: 1})), limit)
	assertUnchanged(t, b, vips, kernel)

	// Changes that need no new id still work on a full table.
	if err := b.UpdateReal(a, Real{Addr: aReals[0].Addr, Weight: 0}); err != nil {
		t.Fatalf("weight change on a full table: %v", err)
	}
	seen := map[netip.Addr]bool{}
	for i := range 200 {
		got := realOf(t, b, a, "192.168.2.1", uint16(4000+i))
		if !slices.ContainsFunc(aReals[1:], func(r Real) bool { return r.Addr == got }) {
			t.Fatalf("flow went to %s, not one of the weighted reals of %s", got, a)
		}
		seen[got] = true
	}
	if len(seen) < 5 {
		t.Fatalf("200 flows used only %d of 9 reals", len(seen))
	}
	if act := actionFor(t, b, d); act != xdpDrop {
		t.Fatalf("VIP whose real was refused: action %d, want drop (no real)", act)
	}

	// A deleted real frees its id for any VIP.
	if err := b.DelReal(a, aReals[0].Addr); err != nil {
		t.Fatal(err)
	}
	if err := b.AddReal(d, Real{Addr: addr("10.0.2.1"), Weight: 1}); err != nil {
		t.Fatalf("add after delete: %v", err)
	}
	if got := realOf(t, b, d, "192.168.2.1", 5000); got != addr("10.0.2.1") {
		t.Fatalf("new real not used: flow went to %s", got)
	}
	assertFull(t, b.AddReal(d, Real{Addr: addr("10.0.2.2"), Weight: 1}), limit)
	if got := readKernelState(t, b).RealsUse; got != 16 {
		t.Fatalf("%d real ids in use after delete and add, want 16", got)
	}
}

func TestLimitMarks(t *testing.T) {
	testutil.RequirePrivileged(t)
	const maxMarks = 8
	h, err := NewHealthcheck(HealthcheckConfig{
		MaxMarks: maxMarks, SourceV4: addr("10.0.13.37"), SourceV6: addr("fc00:2307::1337"),
		LocalMAC: hcLocalMAC, GatewayMAC: gwMAC,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	realFor := func(mark uint32) netip.Addr {
		if mark%2 == 0 {
			return addr(fmt.Sprintf("fc00::3:%d", mark))
		}
		return addr(fmt.Sprintf("10.0.3.%d", mark))
	}
	for mark := uint32(1); mark <= maxMarks; mark++ {
		if err := h.AddMark(mark, realFor(mark)); err != nil {
			t.Fatal(err)
		}
	}
	entries := func() int {
		n := 0
		var k uint32
		var v bpf.HealthcheckHcReal
		for it := h.objs.HcReals.Iterate(); it.Next(&k, &v); {
			n++
		}
		return n
	}
	before := h.Marks()
	assertFull(t, h.AddMark(maxMarks+1, addr("10.0.3.99")), "8 marks configured, the limit")
	if got := h.Marks(); !reflect.DeepEqual(got, before) || entries() != maxMarks {
		t.Fatalf("marks changed on a refused add: %v -> %v, %d kernel entries", before, got, entries())
	}

	frame := ethIn(testpkt.EtherTypeIPv4, udp4("192.168.1.1", 31337, "10.200.1.1", 80, payload))
	encapsulatedTo := func(mark uint32) (netip.Addr, bool) {
		act, out := runSKB(t, h.Program(), frame, mark)
		switch {
		case act == tcActUnspec:
			return netip.Addr{}, false
		case act != tcActOK:
			t.Fatalf("mark %d: action %d", mark, act)
		case out[12] == 0x86:
			return netip.AddrFrom16([16]byte(out[14+24 : 14+40])), true
		}
		return netip.AddrFrom4([4]byte(out[14+16 : 14+20])), true
	}
	for mark := uint32(1); mark <= maxMarks; mark++ {
		if got, ok := encapsulatedTo(mark); !ok || got != realFor(mark) {
			t.Fatalf("mark %d on a full table: sent to %s (%v), want %s", mark, got, ok, realFor(mark))
		}
	}
	if _, ok := encapsulatedTo(maxMarks + 1); ok {
		t.Fatal("the refused mark encapsulates")
	}

	if err := h.DelMark(3); err != nil {
		t.Fatal(err)
	}
	if err := h.AddMark(maxMarks+1, addr("10.0.3.99")); err != nil {
		t.Fatalf("add after delete: %v", err)
	}
	if got, ok := encapsulatedTo(maxMarks + 1); !ok || got != addr("10.0.3.99") {
		t.Fatalf("new mark sent to %s (%v)", got, ok)
	}
	if _, ok := encapsulatedTo(3); ok {
		t.Fatal("the deleted mark still encapsulates")
	}
	assertFull(t, h.AddMark(3, addr("10.0.3.3")), "8 marks configured")
}

// The connection tables evict, never refuse: a full table keeps placing
// new flows (and keeping the recent ones). The per-CPU table evicts each
// set's least recently used entry, the fallback table the kernel's LRU.
func TestLimitConnectionTable(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs: one with a table, one without")
	}
	const size = 128
	// run() executes on CPU 0: it has the table in the first balancer and
	// uses the fallback table in the second.
	for _, tc := range []struct {
		name  string
		cfg   Config
		usage func(b *Balancer) (used, capacity int)
		hit   func(s Stats) uint64
	}{
		{"per-CPU table", Config{ForwardingCPUs: []int{0}, ConnTableSize: size},
			func(b *Balancer) (int, int) {
				used, capacity, err := b.ConnTableUse(0)
				if err != nil {
					t.Fatal(err)
				}
				return used, capacity
			}, func(s Stats) uint64 { return s.ConnHit }},
		{"fallback table", Config{ForwardingCPUs: []int{1}, ConnTableSize: 1024, FallbackTableSize: size},
			func(b *Balancer) (int, int) {
				n := 0
				var k bpf.BalancerFlowKey
				var v bpf.BalancerConn
				for it := b.objs.FallbackConns.Iterate(); it.Next(&k, &v); {
					n++
				}
				return n, int(b.objs.FallbackConns.MaxEntries())
			}, func(s Stats) uint64 { return s.FallbackHit }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBalancer(t, tc.cfg)
			reals := []string{"10.0.4.1", "10.0.4.2", "10.0.4.3", "10.0.4.4"}
			vip := smallVIP(t, b, "10.204.0.1:80/tcp", reals...)
			if _, capacity := tc.usage(b); capacity != size {
				t.Fatalf("table has %d entries, want %d", capacity, size)
			}
			entries := func() int { n, _ := tc.usage(b); return n }
			client := func(i int) string { return netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}).String() }
			// Flows from the middle of the run are gone from either table
			// by its end: the LRU hash keeps the last ones; the per-CPU
			// table's sets keep their first flows (a new flow enters at the
			// back of its set) and their last one.
			old := map[int]netip.Addr{}
			const flows = 8 * size
			for i := range flows {
				got := realOf(t, b, vip, client(i), 1024)
				if i >= flows/2 && i < flows/2+16 {
					old[i] = got
				}
			}
			if n := entries(); n > size || n < size/2 {
				t.Fatalf("%d entries after %d flows, want at most %d (and not nearly empty)", n, flows, size)
			}

			// A flow placed after the table filled is remembered...
			ack := func(i int) []byte {
				return ethIn(testpkt.EtherTypeIPv4, tcp4(client(i), 1024, vip.Addr.String(), 80, testpkt.TCPAck))
			}
			before, _ := b.Stats()
			if act, _ := run(t, b.Program(), ack(flows-1)); act != xdpTx {
				t.Fatalf("recent flow: action %d", act)
			}
			after, _ := b.Stats()
			if tc.hit(after) != tc.hit(before)+1 {
				t.Fatalf("recent flow missed the full table: %+v -> %+v", before, after)
			}
			// ...and the middle ones were evicted, and are placed again by the
			// ring, which has not changed: same real.
			misses := 0
			for i, want := range old {
				before, _ := b.Stats()
				act, out := run(t, b.Program(), ack(i))
				after, _ := b.Stats()
				if act != xdpTx || netip.AddrFrom4([4]byte(out[14+16:14+20])) != want {
					t.Fatalf("old flow %d: action %d, real %s, want %s", i, act, netip.AddrFrom4([4]byte(out[14+16:14+20])), want)
				}
				misses += int(after.ConnMissTcpOther - before.ConnMissTcpOther)
			}
			t.Logf("%d flows through a %d-entry table: %d entries held, %d of %d from the middle evicted", flows, size, entries(), misses, len(old))
			if misses == 0 {
				t.Fatalf("none of %d flows from the middle of %d was evicted from a %d-entry table", len(old), flows, size)
			}
			if n := entries(); n > size {
				t.Fatalf("%d entries, more than the %d configured", n, size)
			}
		})
	}
}
