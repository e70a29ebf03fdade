package lb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"vipcast/bpf"
	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
)

// readConnSet returns one set of CPU 0's connection table as the kernel
// holds it, read through the table's memory mapping.
func readConnSet(t *testing.T, b *Balancer, idx uint32) connSet {
	t.Helper()
	var m *ebpf.Map
	if err := b.objs.ConnTables.Lookup(uint32(0), &m); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mem, err := m.Memory()
	if err != nil {
		t.Fatal(err)
	}
	size := binarySize[connSet]()
	raw := make([]byte, size)
	if _, err := mem.ReadAt(raw, int64(idx)*int64(size)); err != nil {
		t.Fatal(err)
	}
	var s connSet
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// sameSetPorts finds n source ports of client whose flows to vip share one
// set of the connection table, by the Go mirror of the kernel's placement.
func sameSetPorts(t *testing.T, b *Balancer, vip VIPKey, client netip.Addr, n int) (uint32, []uint16) {
	t.Helper()
	bySet := map[uint32][]uint16{}
	for sport := uint16(20000); sport < 30000; sport++ {
		f := Flow{Src: netip.AddrPortFrom(client, sport), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: vip.Proto}
		idx, _ := placeOf(b, vip, f)
		bySet[idx] = append(bySet[idx], sport)
		if len(bySet[idx]) == n {
			return idx, bySet[idx]
		}
	}
	t.Fatalf("no %d ports of %s share a set", n, client)
	return 0, nil
}

// The per-CPU table keeps each set in most-recently-used order: a hit moves
// the flow to the front; a new flow goes in at the back, over the least
// recently used one when the set is full, so a run of new flows that send
// nothing more churns only the last way; a flow the set already holds (a
// SYN reusing a 5-tuple) replaces its own entry instead of taking another.
func TestConnTableSetLRU(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 64})
	vip := smallVIP(t, b, "10.205.0.1:80/tcp", "10.0.5.1", "10.0.5.2", "10.0.5.3", "10.0.5.4")
	client := addr("192.168.7.1")
	idx, ports := sameSetPorts(t, b, vip, client, 6)
	A, B, C, D, E, F := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	vs := b.vips[vip]

	realByPort := map[uint16]netip.Addr{}
	flow := func(sport uint16) Flow {
		return Flow{Src: netip.AddrPortFrom(client, sport), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: TCP}
	}
	syn := func(sport uint16) { t.Helper(); realByPort[sport] = sendFlow(t, b, flow(sport), true) }
	ack := func(sport uint16) { t.Helper(); realByPort[sport] = sendFlow(t, b, flow(sport), false) }
	// want lists the set's flows by source port, most recent first.
	check := func(step string, want ...uint16) {
		t.Helper()
		set := readConnSet(t, b, idx)
		for i, sport := range want {
			s := set.Slot[i]
			_, wantSlot := placeOf(b, vip, flow(sport))
			wantSlot.RealID = vs.reals[realByPort[sport]].id
			if s != wantSlot {
				t.Fatalf("%s: way %d = %+v, want port %d: %+v (set %s)", step, i, s, sport, wantSlot, describeSet(set))
			}
		}
		if used, _, _ := b.ConnTableUse(0); used != len(want) {
			t.Fatalf("%s: %d entries in the table, want %d (set %s)", step, used, len(want), describeSet(set))
		}
	}

	for _, p := range []uint16{A, B, C, D} {
		syn(p)
	}
	check("four SYNs fill the free ways in order", A, B, C, D)
	before, _ := b.Stats()
	ack(D)
	check("D's next packet: to the front", D, A, B, C)
	syn(E)
	check("E new, set full: over the least recently used, C", D, A, B, E)
	syn(F)
	check("F new: over E, the others stay", D, A, B, F)
	ack(B)
	check("B again", B, D, A, F)
	ack(C)
	check("C back (a miss): over F", B, D, A, C)
	syn(A)
	check("A's 5-tuple reused by a SYN: replaced where it is", B, D, A, C)
	after, _ := b.Stats()
	if hits, misses := after.ConnHit-before.ConnHit, after.ConnMissTcpOther-before.ConnMissTcpOther; hits != 2 || misses != 1 {
		t.Fatalf("hits %d, non-SYN misses %d; want 2 and 1", hits, misses)
	}
}

// Flows from one client address and port to two VIPs are two flows: each
// has its own entry, keyed by its VIP's number.
func TestConnTableKeysVIPsApart(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 4096})
	v1 := smallVIP(t, b, "10.205.1.1:80/tcp", "10.0.5.1", "10.0.5.2")
	v2 := smallVIP(t, b, "10.205.1.2:80/tcp", "10.0.5.3", "10.0.5.4")
	client := addr("192.168.7.2")
	for _, vip := range []VIPKey{v1, v2} {
		got := realOf(t, b, vip, client.String(), 40000)
		vs := b.vips[vip]
		f := Flow{Src: netip.AddrPortFrom(client, 40000), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: vip.Proto}
		idx, want := placeOf(b, vip, f)
		want.RealID = vs.reals[got].id
		set := readConnSet(t, b, idx)
		if set.Slot[0] != want {
			t.Fatalf("%s: way 0 = %+v, want %+v", vip, set.Slot[0], want)
		}
	}
	if used, _, _ := b.ConnTableUse(0); used != 2 {
		t.Fatalf("%d entries, want 2", used)
	}
}

func describeSet(s connSet) string {
	var out bytes.Buffer
	for i, w := range s.Slot {
		fmt.Fprintf(&out, "[%d: flow %#x vip %d real %d]", i, w.Flow, w.VIPNum, w.RealID)
	}
	return out.String()
}

// connModel is a per-CPU connection table as the program is meant to keep
// it: sets of up to connWays flows, most recently used first; a packet of a
// flow the set holds moves it to the front unless it is a SYN (then the
// entry is replaced where it is), a new flow goes in at the back (over the
// last, least recently used, flow when the set is full).
type connModel struct {
	sets map[uint32][]connSlot
}

// packet applies one packet of a flow whose key (a slot without its real)
// lives in set idx, and returns the real id the flow goes to and whether
// the set held the flow. pick is the ring's choice; usable says whether a
// remembered real may still be used.
func (m *connModel) packet(idx uint32, key connSlot, syn bool, pick uint32, usable func(id uint32) bool) (uint32, bool) {
	set := m.sets[idx]
	way := slices.IndexFunc(set, func(s connSlot) bool { k := s; k.RealID = 0; return k == key })
	id := pick
	if way >= 0 && !syn && usable(set[way].RealID) {
		id = set[way].RealID
	}
	key.RealID = id
	switch {
	case way >= 0 && syn: // held, a SYN: replaced where it is
		set[way] = key
	case way >= 0: // held: to the front
		set = slices.Insert(slices.Delete(set, way, way+1), 0, key)
	case len(set) < connWays: // new, room left: at the back
		set = append(set, key)
	default: // new, set full: over the least recently used
		set[connWays-1] = key
	}
	m.sets[idx] = set
	return id, way >= 0
}

// connKeyOf is the entry of a flow as the program is meant to build it:
// the VIP number and, for an IPv4 client, the address and ports the VIP's
// flags leave, in the words the little-endian program loads (written here
// without the Go mirror of the program); for an IPv6 client the keyed
// fingerprint, which only the mirror (connPlace) can compute.
func connKeyOf(b *Balancer, f Flow, flags VIPFlags, vipNum uint32) connSlot {
	if f.Src.Addr().Is6() {
		_, key := connPlace(flowWords(f, flags), true, vipNum, b.connKey, b.connSets())
		return key
	}
	src, sport, dport := f.Src.Addr().As4(), f.Src.Port(), f.Dst.Port()
	switch {
	case flags&FlagDportOnly != 0:
		src, sport = [4]byte{}, dport
	default:
		if flags&FlagNoSrcPort != 0 {
			sport = 0
		}
		if flags&flagAnyPort != 0 {
			dport = 0
		}
	}
	loaded := func(port uint16) uint64 { return uint64(bits.ReverseBytes16(port)) }
	word := uint64(binary.LittleEndian.Uint32(src[:]))<<32 | loaded(sport)<<16 | loaded(dport)
	return connSlot{Flow: word, VIPNum: vipNum}
}

// placeOf is the set and entry of a flow of vip, by the Go mirror.
func placeOf(b *Balancer, vip VIPKey, f Flow) (uint32, connSlot) {
	vs := b.vips[vip]
	return connPlace(flowWords(f, kernelFlags(vs.VIP)), vip.Addr.Is6(), vs.num, b.connKey, b.connSets())
}

// Random packets of 48 flows through a 32-entry table while the ring
// changes under them and reals go down, draining and up: after every packet
// the real chosen and the whole table are what the model says. One VIP of
// each kind: IPv4 and IPv6 (with clients that differ only in their last
// word), TCP and UDP, no_src_port, dport_only, and port 0 (any port).
func TestConnTableMatchesModel(t *testing.T) {
	testutil.RequirePrivileged(t)
	v4client := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 9, byte(1 + i%5)}) }
	v6client := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fc00:9::%x", 1+i%5)) }
	for _, tc := range []struct {
		name   string
		vip    string
		flags  VIPFlags
		reals  []string
		client func(i int) netip.Addr
	}{
		{"v4 tcp", "10.206.0.1:443/tcp", 0, []string{"10.0.6.1", "10.0.6.2", "10.0.6.3", "10.0.6.4"}, v4client},
		{"v6 tcp", "[fc00:206::1]:443/tcp", 0, []string{"fc00:6::1", "fc00:6::2", "fc00:6::3", "fc00:6::4"}, v6client},
		{"v4 udp", "10.206.0.2:53/udp", 0, []string{"10.0.6.1", "10.0.6.2", "10.0.6.3"}, v4client},
		{"v6 udp", "[fc00:206::2]:53/udp", 0, []string{"fc00:6::1", "fc00:6::2", "fc00:6::3"}, v6client},
		{"no_src_port", "10.206.0.3:80/tcp", FlagNoSrcPort, []string{"10.0.6.1", "10.0.6.2", "10.0.6.3"}, v4client},
		{"dport_only", "10.206.0.4:80/udp", FlagDportOnly, []string{"10.0.6.1", "10.0.6.2", "10.0.6.3"}, v4client},
		{"port 0", "10.206.0.5:0/tcp", 0, []string{"10.0.6.1", "10.0.6.2", "10.0.6.3"}, v4client},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 32})
			k, err := ParseVIPKey(tc.vip)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.AddVIP(VIP{Key: k, RingSize: 1021, Flags: tc.flags}); err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.reals {
				if err := b.AddReal(k, Real{Addr: addr(r), Weight: 1}); err != nil {
					t.Fatal(err)
				}
			}
			vs := b.vips[k]
			rng := rand.New(rand.NewPCG(1, 2))
			var flows []Flow
			for i := range 48 {
				dport := k.Port
				if dport == 0 {
					dport = uint16(80 + rng.IntN(3))
				}
				flows = append(flows, Flow{Src: netip.AddrPortFrom(tc.client(i), uint16(1000+rng.IntN(60000))),
					Dst: netip.AddrPortFrom(k.Addr, dport), Proto: k.Proto})
			}
			model := connModel{sets: map[uint32][]connSlot{}}
			states := map[netip.Addr]RealState{}
			remembered := 0
			for step := range 1500 {
				if step%100 == 99 {
					// Change the ring: new weights, one real in another state.
					reals := make([]Real, len(tc.reals))
					for i, a := range tc.reals {
						reals[i] = Real{Addr: addr(a), Weight: uint32(1 + rng.IntN(5))}
					}
					reals[rng.IntN(len(reals))].State = []RealState{Up, Draining, Down}[rng.IntN(3)]
					if err := b.SetReals(k, reals); err != nil {
						t.Fatal(err)
					}
					for _, r := range reals {
						states[r.Addr] = r.State
					}
				}
				f := flows[rng.IntN(len(flows))]
				syn := k.Proto == TCP && rng.IntN(4) == 0
				ringReal, err := b.RealFor(k, f)
				if err != nil {
					t.Fatal(err)
				}
				idx, _ := placeOf(b, k, f)
				usable := func(id uint32) bool {
					for a, r := range vs.reals {
						if r.id == id {
							return states[a] != Down
						}
					}
					return false
				}
				pick := vs.reals[ringReal].id
				wantID, _ := model.packet(idx, connKeyOf(b, f, kernelFlags(vs.VIP), vs.num), syn, pick, usable)
				if wantID != pick {
					remembered++
				}

				got := sendFlow(t, b, f, syn)
				if vs.reals[got].id != wantID {
					t.Fatalf("step %d (syn %v, %s): real %s (id %d), model says id %d", step, syn, f.Src, got, vs.reals[got].id, wantID)
				}
				for i := range b.connSets() {
					set := readConnSet(t, b, i)
					want := model.sets[i]
					for w := range connWays {
						var ws connSlot
						if w < len(want) {
							ws = want[w]
						}
						if set.Slot[w] != ws {
							t.Fatalf("step %d: set %d is %s, model %v", step, i, describeSet(set), want)
						}
					}
				}
			}
			t.Logf("1500 packets: %d went to a remembered real other than the ring's choice", remembered)
			if remembered == 0 && tc.flags&FlagDportOnly == 0 {
				t.Fatal("no packet used a remembered real that differs from the ring: the test proves nothing")
			}
		})
	}
}

// sendFlow runs one packet of f (a SYN or, for TCP, an ACK; UDP otherwise)
// and returns the real the balancer sent it to.
func sendFlow(t *testing.T, b *Balancer, f Flow, syn bool) netip.Addr {
	t.Helper()
	client, dst := f.Src.Addr().String(), f.Dst.Addr().String()
	flags := uint8(testpkt.TCPAck)
	if syn {
		flags = testpkt.TCPSyn
	}
	var frame []byte
	switch {
	case f.Src.Addr().Is4() && f.Proto == TCP:
		frame = ethIn(testpkt.EtherTypeIPv4, tcp4(client, f.Src.Port(), dst, f.Dst.Port(), flags))
	case f.Src.Addr().Is4():
		frame = ethIn(testpkt.EtherTypeIPv4, udp4(client, f.Src.Port(), dst, f.Dst.Port(), payload))
	case f.Proto == TCP:
		frame = ethIn(testpkt.EtherTypeIPv6, tcp6(client, f.Src.Port(), dst, f.Dst.Port(), flags, payload))
	default:
		frame = ethIn(testpkt.EtherTypeIPv6, v6(client, dst, testpkt.ProtoUDP, testpkt.UDP{SrcPort: f.Src.Port(), DstPort: f.Dst.Port()}.Datagram(addr(client), addr(dst), payload)))
	}
	act, out := run(t, b.Program(), frame)
	if act != xdpTx {
		t.Fatalf("%s -> %s: action %d", f.Src, f.Dst, act)
	}
	if out[12] == 0x86 {
		return netip.AddrFrom16([16]byte(out[14+24 : 14+40]))
	}
	return netip.AddrFrom4([4]byte(out[14+16 : 14+20]))
}

// A flood of SYNs that send nothing more (each sent twice), all into one
// set, replaces only the set's last way: the flows that had seen a second
// packet stay, and keep their reals when the ring changes.
func TestConnTableSYNFloodKeepsEstablished(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 64})
	reals := []string{"10.0.7.1", "10.0.7.2", "10.0.7.3", "10.0.7.4"}
	vip := smallVIP(t, b, "10.207.0.1:80/tcp", reals...)
	client := addr("192.168.8.1")
	_, ports := sameSetPorts(t, b, vip, client, 3+200)
	established, flood := ports[:3], ports[3:]

	packet := func(sport uint16, syn bool) netip.Addr {
		t.Helper()
		return sendFlow(t, b, Flow{Src: netip.AddrPortFrom(client, sport), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: TCP}, syn)
	}
	placed := map[uint16]netip.Addr{}
	for _, p := range established {
		placed[p] = packet(p, true)
		packet(p, false)
	}
	// Every flood SYN comes twice, as a real stack resends an unanswered
	// SYN; back to back, so the second finds the first's entry.
	for _, p := range flood {
		packet(p, true)
		packet(p, true)
	}
	// A new ring: a flow the table forgot would now likely go elsewhere.
	var next []Real
	for i, r := range reals {
		next = append(next, Real{Addr: addr(r), Weight: uint32(1 + 7*(i%2))})
	}
	if err := b.SetReals(vip, next); err != nil {
		t.Fatal(err)
	}
	before, _ := b.Stats()
	for _, p := range established {
		if got := packet(p, false); got != placed[p] {
			t.Fatalf("established flow from port %d went to %s after the flood, was on %s", p, got, placed[p])
		}
	}
	after, _ := b.Stats()
	if hits := after.ConnHit - before.ConnHit; hits != uint64(len(established)) {
		t.Fatalf("%d of %d established flows hit the table after %d SYNs into their set", hits, len(established), len(flood))
	}
}

// An entry whose real id has since been given to another VIP's real is not
// followed: the flow is placed again from its own VIP's ring and its entry
// rewritten.
func TestConnTableStaleIDOfAnotherVIP(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 64, MaxReals: 4}) // ids 1..3
	a := smallVIP(t, b, "10.208.0.1:80/tcp", "10.0.8.1")
	f := Flow{Src: netip.MustParseAddrPort("192.168.10.1:40000"), Dst: netip.AddrPortFrom(a.Addr, a.Port), Proto: TCP}
	if got := sendFlow(t, b, f, true); got != addr("10.0.8.1") {
		t.Fatalf("SYN went to %s", got)
	}
	oldID := b.vips[a].reals[addr("10.0.8.1")].id
	if err := b.AddReal(a, Real{Addr: addr("10.0.8.2"), Weight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.DelReal(a, addr("10.0.8.1")); err != nil {
		t.Fatal(err)
	}
	other := smallVIP(t, b, "10.208.0.2:80/tcp", "10.0.8.3", "10.0.8.4")
	if id := b.vips[other].reals[addr("10.0.8.4")].id; id != oldID {
		t.Fatalf("the test needs id %d reused by the other VIP; 10.0.8.4 got %d", oldID, id)
	}

	before, _ := b.Stats()
	if got := sendFlow(t, b, f, false); got != addr("10.0.8.2") {
		t.Fatalf("flow of %s followed a stale id to %s, want its VIP's remaining real 10.0.8.2", a, got)
	}
	after, _ := b.Stats()
	if after.ConnRepickDown != before.ConnRepickDown+1 || after.ConnHit != before.ConnHit {
		t.Fatalf("re-picks %d -> %d, hits %d -> %d; want one re-pick, no hit", before.ConnRepickDown, after.ConnRepickDown, before.ConnHit, after.ConnHit)
	}
	vs := b.vips[a]
	idx, _ := placeOf(b, a, f)
	set := readConnSet(t, b, idx)
	if set.Slot[0].RealID != vs.reals[addr("10.0.8.2")].id {
		t.Fatalf("entry not rewritten: %s", describeSet(set))
	}
}

// Should the configured set count ever exceed a table (lb refuses such
// tables at start), flows whose set is past the end use the shared
// fallback table instead of going untracked.
func TestConnTableSetPastTheEndUsesFallback(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 64})
	vip := smallVIP(t, b, "10.209.0.1:80/tcp", "10.0.9.1", "10.0.9.2")
	var cfg bpf.BalancerLbConfig
	if err := b.objs.Config.Lookup(uint32(0), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.ConnSets *= 2
	if err := b.objs.Config.Put(uint32(0), &cfg); err != nil {
		t.Fatal(err)
	}
	vs := b.vips[vip]
	for sport := uint16(20000); sport < 21000; sport++ {
		f := Flow{Src: netip.AddrPortFrom(addr("192.168.11.1"), sport), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: TCP}
		if idx, _ := connPlace(flowWords(f, kernelFlags(vs.VIP)), false, vs.num, b.connKey, cfg.ConnSets); idx < b.connSets() {
			continue
		}
		first := sendFlow(t, b, f, true)
		before, _ := b.Stats()
		if got := sendFlow(t, b, f, false); got != first {
			t.Fatalf("second packet went to %s, first to %s", got, first)
		}
		after, _ := b.Stats()
		if after.FallbackHit != before.FallbackHit+1 {
			t.Fatalf("fallback hits %d -> %d, want one more", before.FallbackHit, after.FallbackHit)
		}
		return
	}
	t.Fatal("no flow maps past the table's end")
}
