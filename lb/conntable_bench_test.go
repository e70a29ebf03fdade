package lb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// BenchmarkConnTableRetention measures, on the model of the per-CPU table
// (connModel, kept equal to the kernel's by TestConnTableMatchesModel) with
// the kernel's set index, how often a packet of an established flow misses
// the table because its set overflowed, by how full the table is with live
// flows (packets pick their flow uniformly at random), and how many flows
// that fall silent meanwhile the table forgets (%idle-lost). A miss costs a
// lookup in the ring: it moves the flow only if the ring changed since the
// flow began.
func BenchmarkConnTableRetention(b *testing.B) {
	const slots = 1 << 16
	sets := uint32(slots / connWays)
	vip := netip.MustParseAddrPort("203.0.113.1:80")
	var key [12]uint32
	if err := randomKey(key[:]); err != nil {
		b.Fatal(err)
	}
	for _, load := range []float64{0.10, 0.25, 0.50, 0.75, 1.00} {
		b.Run(fmt.Sprintf("load-%.2f", load), func(b *testing.B) {
			var missRate, idleLost float64
			for range b.N {
				rng := rand.New(rand.NewPCG(7, uint64(load*100)))
				n := int(load * slots)
				keys := make([]connSlot, n)
				idx := make([]uint32, n)
				for i := range n {
					client := netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
					sport := uint16(1024 + rng.IntN(60000))
					f := Flow{Src: netip.AddrPortFrom(client, sport), Dst: vip, Proto: TCP}
					idx[i], keys[i] = connPlace(flowWords(f, 0), false, 0, key, sets)
				}
				m := connModel{sets: map[uint32][]connSlot{}}
				always := func(uint32) bool { return true }
				// Warm up with 20 packets a flow, then count over as many.
				packets := 20 * n
				misses := 0
				for p := range 2 * packets {
					f := rng.IntN(n)
					if _, held := m.packet(idx[f], keys[f], false, 1, always); !held && p >= packets {
						misses++
					}
				}
				missRate = float64(misses) / float64(packets)

				// Idle flows: the first tenth of the flows (held at this
				// point) fall silent while the others send as many packets
				// again; how many of them does the table still hold?
				idle := n / 10
				var held []int
				for f := range idle {
					if slices.ContainsFunc(m.sets[idx[f]], func(s connSlot) bool { s.RealID = 0; return s == keys[f] }) {
						held = append(held, f)
					}
				}
				for range packets {
					f := idle + rng.IntN(n-idle)
					m.packet(idx[f], keys[f], false, 1, always)
				}
				lost := 0
				for _, f := range held {
					if !slices.ContainsFunc(m.sets[idx[f]], func(s connSlot) bool { s.RealID = 0; return s == keys[f] }) {
						lost++
					}
				}
				idleLost = float64(lost) / float64(max(len(held), 1))
			}
			b.ReportMetric(100*missRate, "%miss")
			b.ReportMetric(100*idleLost, "%idle-lost")
			b.ReportMetric(0, "ns/op")
		})
	}
}
