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
		idx := connSetIndex(flowHash(f, kernelFlags(vs.VIP)), vs.num, b.connSets())
		bySet[idx] = append(bySet[idx], sport)
		if len(bySet[idx]) == n {
			return idx, bySet[idx]
		}
	}
	t.Fatalf("no %d ports of %s share a set", n, client)
	return 0, nil
}

// The per-CPU table keeps each set in most-recently-used order: a hit moves
// the flow to the front, a new flow goes in front and pushes the least
// recently used one out, and a flow the set already holds (a SYN reusing a
// 5-tuple) replaces its own entry instead of taking a second one.
func TestConnTableSetLRU(t *testing.T) {
	testutil.RequirePrivileged(t)
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{0}, ConnTableSize: 64})
	vip := smallVIP(t, b, "10.205.0.1:80/tcp", "10.0.5.1", "10.0.5.2", "10.0.5.3", "10.0.5.4")
	client := addr("192.168.7.1")
	idx, ports := sameSetPorts(t, b, vip, client, 5)
	A, B, C, D, E := ports[0], ports[1], ports[2], ports[3], ports[4]
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
	check("four SYNs", D, C, B, A)
	before, _ := b.Stats()
	ack(A)
	check("A again", A, D, C, B)
	syn(E)
	check("E new: B out", E, A, D, C)
	ack(B)
	check("B back", B, E, A, D)
	syn(A)
	check("A's 5-tuple reused", A, B, E, D)
	after, _ := b.Stats()
	if hits, misses := after.ConnHit-before.ConnHit, after.ConnMissTcpOther-before.ConnMissTcpOther; hits != 1 || misses != 1 {
		t.Fatalf("hits %d, non-SYN misses %d; want 1 and 1", hits, misses)
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
		set := readConnSet(t, b, connSetIndex(flowHash(f, kernelFlags(vs.VIP)), vs.num, b.connSets()))
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
// it: sets of up to connWays flows, most recently used first.
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
	if way >= 0 {
		set = slices.Delete(set, way, way+1)
	} else if len(set) == connWays {
		set = set[:connWays-1]
	}
	key.RealID = id
	m.sets[idx] = slices.Insert(set, 0, key)
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
		idx := connSetIndex(flowHash(ff, kernelFlags(vs.VIP)), vs.num, b.connSets())
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
