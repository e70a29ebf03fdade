package lb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// BenchmarkConnTableRetention measures, on the model of the per-CPU table
// (connModel, kept equal to the kernel's by TestConnTableMatchesModel) with
// the kernel's set index, how often a packet of an established flow misses
// the table because its set overflowed, by how full the table is with live
// flows. Packets pick their flow uniformly at random. A miss costs a lookup
// in the ring: it moves the flow only if the ring changed since the flow
// began. (The kernel's LRU hash, used before, misses nothing below full.)
func BenchmarkConnTableRetention(b *testing.B) {
	const slots = 1 << 16
	sets := uint32(slots / connWays)
	vip := netip.MustParseAddrPort("203.0.113.1:80")
	var key [6]uint32
	if err := randomKey(key[:]); err != nil {
		b.Fatal(err)
	}
	for _, load := range []float64{0.10, 0.25, 0.50, 0.75, 1.00} {
		b.Run(fmt.Sprintf("load-%.2f", load), func(b *testing.B) {
			var missRate float64
			for range b.N {
				rng := rand.New(rand.NewPCG(7, uint64(load*100)))
				n := int(load * slots)
				keys := make([]connSlot, n)
				idx := make([]uint32, n)
				for i := range n {
					client := netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
					sport := uint16(1024 + rng.IntN(60000))
					f := Flow{Src: netip.AddrPortFrom(client, sport), Dst: vip, Proto: TCP}
					idx[i] = connSetIndex(flowWords(f, 0), 0, key, sets)
					keys[i] = connSlot{Src: addrWords(client), Sport: htons(sport), Dport: htons(80)}
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
			}
			b.ReportMetric(100*missRate, "%miss")
			b.ReportMetric(0, "ns/op")
		})
	}
}
