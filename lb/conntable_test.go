package lb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

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
	vs := b.vips[vip]
	bySet := map[uint32][]uint16{}
	for sport := uint16(20000); sport < 30000; sport++ {
		f := Flow{Src: netip.AddrPortFrom(client, sport), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: vip.Proto}
		idx := connSetIndex(flowWords(f, kernelFlags(vs.VIP)), vs.num, b.connKey, b.connSets())
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
	syn := func(sport uint16) { realByPort[sport] = realOf(t, b, vip, client.String(), sport) }
	ack := func(sport uint16) {
		t.Helper()
		act, out := run(t, b.Program(), ethIn(testpkt.EtherTypeIPv4, tcp4(client.String(), sport, vip.Addr.String(), vip.Port, testpkt.TCPAck)))
		if act != xdpTx {
			t.Fatalf("ACK from port %d: action %d", sport, act)
		}
		realByPort[sport] = netip.AddrFrom4([4]byte(out[14+16 : 14+20]))
	}
	// want lists the set's flows by source port, most recent first.
	check := func(step string, want ...uint16) {
		t.Helper()
		set := readConnSet(t, b, idx)
		for i, sport := range want {
			s := set.Slot[i]
			wantSlot := connSlot{Src: addrWords(client), Sport: htons(sport), Dport: htons(vip.Port), VIPNum: vs.num,
				RealID: vs.reals[realByPort[sport]].id}
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
	check("A's 5-tuple reused: replaced, to the front", A, B, D, C)
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
		set := readConnSet(t, b, connSetIndex(flowWords(f, kernelFlags(vs.VIP)), vs.num, b.connKey, b.connSets()))
		want := connSlot{Src: addrWords(client), Sport: htons(40000), Dport: htons(80), VIPNum: vs.num, RealID: vs.reals[got].id}
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
		fmt.Fprintf(&out, "[%d: port %d real %d]", i, htons(w.Sport), w.RealID)
	}
	return out.String()
}

// connModel is a per-CPU connection table as the program is meant to keep
// it: sets of up to connWays flows, most recently used first; a packet of a
// flow the set holds moves it to the front, a new flow goes in at the back
// (over the last, least recently used, flow when the set is full).
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

// Random SYNs and ACKs of 48 flows through a 32-entry table while the ring
// changes under them and reals go down, draining and up: after every packet
// the real chosen and the whole table are what the model says.
func TestConnTableMatchesModel(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 32})
	realAddrs := []string{"10.0.6.1", "10.0.6.2", "10.0.6.3", "10.0.6.4"}
	vip := smallVIP(t, b, "10.206.0.1:443/tcp", realAddrs...)
	vs := b.vips[vip]
	rng := rand.New(rand.NewPCG(1, 2))
	type flow struct {
		client netip.Addr
		sport  uint16
	}
	var flows []flow
	for i := range 48 {
		flows = append(flows, flow{netip.AddrFrom4([4]byte{192, 168, 9, byte(1 + i%5)}), uint16(1000 + rng.IntN(60000))})
	}
	model := connModel{sets: map[uint32][]connSlot{}}
	states := map[netip.Addr]RealState{}
	remembered := 0
	for step := range 1500 {
		if step%100 == 99 {
			// Change the ring: new weights, one real in another state.
			reals := make([]Real, len(realAddrs))
			for i, a := range realAddrs {
				reals[i] = Real{Addr: addr(a), Weight: uint32(1 + rng.IntN(5))}
			}
			reals[rng.IntN(len(reals))].State = []RealState{Up, Draining, Down}[rng.IntN(3)]
			if err := b.SetReals(vip, reals); err != nil {
				t.Fatal(err)
			}
			for _, r := range reals {
				states[r.Addr] = r.State
			}
		}
		f := flows[rng.IntN(len(flows))]
		syn := rng.IntN(4) == 0
		ff := Flow{Src: netip.AddrPortFrom(f.client, f.sport), Dst: netip.AddrPortFrom(vip.Addr, vip.Port), Proto: TCP}
		ringReal, err := b.RealFor(vip, ff)
		if err != nil {
			t.Fatal(err)
		}
		idx := connSetIndex(flowWords(ff, kernelFlags(vs.VIP)), vs.num, b.connKey, b.connSets())
		key := connSlot{Src: addrWords(f.client), Sport: htons(f.sport), Dport: htons(vip.Port), VIPNum: vs.num}
		usable := func(id uint32) bool {
			for a, r := range vs.reals {
				if r.id == id {
					return states[a] != Down
				}
			}
			return false
		}
		pick := vs.reals[ringReal].id
		wantID, _ := model.packet(idx, key, syn, pick, usable)
		if wantID != pick {
			remembered++
		}

		flags := uint8(testpkt.TCPAck)
		if syn {
			flags = testpkt.TCPSyn
		}
		act, out := run(t, b.Program(), ethIn(testpkt.EtherTypeIPv4, tcp4(f.client.String(), f.sport, vip.Addr.String(), vip.Port, flags)))
		if act != xdpTx {
			t.Fatalf("step %d: action %d", step, act)
		}
		got := netip.AddrFrom4([4]byte(out[14+16 : 14+20]))
		if vs.reals[got].id != wantID {
			t.Fatalf("step %d (syn %v, %s:%d): real %s (id %d), model says id %d", step, syn, f.client, f.sport, got, vs.reals[got].id, wantID)
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
	if remembered == 0 {
		t.Fatal("no packet used a remembered real that differs from the ring: the test proves nothing")
	}

}

// A flood of SYNs that send nothing more, all into one set, replaces only
// the set's last way: the flows that had seen a second packet stay, and
// keep their reals when the ring changes.
func TestConnTableSYNFloodKeepsEstablished(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 64})
	reals := []string{"10.0.7.1", "10.0.7.2", "10.0.7.3", "10.0.7.4"}
	vip := smallVIP(t, b, "10.207.0.1:80/tcp", reals...)
	client := addr("192.168.8.1")
	_, ports := sameSetPorts(t, b, vip, client, 3+200)
	established, flood := ports[:3], ports[3:]

	packet := func(sport uint16, flags uint8) netip.Addr {
		t.Helper()
		act, out := run(t, b.Program(), ethIn(testpkt.EtherTypeIPv4, tcp4(client.String(), sport, vip.Addr.String(), vip.Port, flags)))
		if act != xdpTx {
			t.Fatalf("port %d: action %d", sport, act)
		}
		return netip.AddrFrom4([4]byte(out[14+16 : 14+20]))
	}
	placed := map[uint16]netip.Addr{}
	for _, p := range established {
		placed[p] = packet(p, testpkt.TCPSyn)
		packet(p, testpkt.TCPAck)
	}
	for _, p := range flood {
		packet(p, testpkt.TCPSyn)
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
		if got := packet(p, testpkt.TCPAck); got != placed[p] {
			t.Fatalf("established flow from port %d went to %s after the flood, was on %s", p, got, placed[p])
		}
	}
	after, _ := b.Stats()
	if hits := after.ConnHit - before.ConnHit; hits != uint64(len(established)) {
		t.Fatalf("%d of %d established flows hit the table after %d SYNs into their set", hits, len(established), len(flood))
	}
}
