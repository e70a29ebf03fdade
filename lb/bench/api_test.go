package bench

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
	"vipcast/lb"
)

const (
	apiSamples = 40 // timed samples at least, whatever b.N
	apiReals   = 10
	xdpTX      = 3
)

// BenchmarkAPIToFirstPacket times a new service from the API call to its
// first forwarded packet: AddVIP, then its 10 reals, then one
// BPF_PROG_TEST_RUN (repeat 1) of a SYN to the VIP, which must come back
// XDP_TX. The reals are added one AddReal at a time (each rebuilds and
// swaps in the VIP's 65,537-slot Maglev ring), or, for comparison, with one
// SetReals (one ring write). The VIP is removed again between samples,
// untimed, so every sample starts from the same state; the client port
// changes so every first packet is a connection-table miss.
//
// With -benchtime 1x (make bench) one iteration would be one noisy sample,
// so each sub-benchmark takes at least apiSamples and reports their median
// as ns/op, with the 90th percentile and the parts beside it.
func BenchmarkAPIToFirstPacket(b *testing.B) {
	testutil.RequirePrivileged(b)
	bal, err := lb.New(lb.Config{GatewayMAC: gwMAC, ConnTableSize: 65536, FallbackTableSize: 1024})
	if err != nil {
		b.Fatalf("lb.New: %v", err)
	}
	defer bal.Close()

	key := lb.VIPKey{Addr: netip.MustParseAddr("203.0.113.2"), Port: 80, Proto: lb.TCP}
	var reals []lb.Real
	for i := range apiReals {
		reals = append(reals, lb.Real{Addr: addrPlus(realBase, uint32(i)), Weight: 1})
	}
	addEach := func() error {
		for _, r := range reals {
			if err := bal.AddReal(key, r); err != nil {
				return fmt.Errorf("AddReal %s: %w", r.Addr, err)
			}
		}
		return nil
	}
	setAll := func() error { return bal.SetReals(key, reals) }

	sport := uint16(10000)
	for _, v := range []struct {
		name     string
		addReals func() error
	}{{"AddRealx10", addEach}, {"SetReals10", setAll}} {
		b.Run(v.name, func(b *testing.B) {
			n := max(b.N, apiSamples)
			var total, addVIP, addReals, firstPkt []float64
			out := make([]byte, 256)
			for range n {
				sport++
				frame := tcpFrame(clientAddr, sport, key.Addr, testpkt.TCPSyn)
				opts := &ebpf.RunOptions{Data: frame, DataOut: out, Repeat: 1}

				t0 := time.Now()
				if err := bal.AddVIP(lb.VIP{Key: key}); err != nil {
					b.Fatalf("AddVIP: %v", err)
				}
				t1 := time.Now()
				if err := v.addReals(); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				ret, err := bal.Program().Run(opts)
				t3 := time.Now()
				if err != nil {
					b.Fatalf("test run: %v", err)
				}
				if ret != xdpTX {
					b.Fatalf("first packet after the API calls returned action %d, want XDP_TX (%d)", ret, xdpTX)
				}
				total = append(total, float64(t3.Sub(t0)))
				addVIP = append(addVIP, float64(t1.Sub(t0)))
				addReals = append(addReals, float64(t2.Sub(t1)))
				firstPkt = append(firstPkt, float64(t3.Sub(t2)))
				if err := bal.DelVIP(key); err != nil {
					b.Fatalf("DelVIP: %v", err)
				}
			}
			b.ReportMetric(median(total), "ns/op")
			b.ReportMetric(percentile(total, 0.9), "p90-ns")
			b.Logf("%d samples, medians: AddVIP %s, %s %s, first packet %s; total %s (p90 %s)",
				n, dur(median(addVIP)), v.name, dur(median(addReals)),
				dur(median(firstPkt)), dur(median(total)), dur(percentile(total, 0.9)))
		})
	}
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1)+0.5)]
}

func dur(ns float64) string { return fmt.Sprint(time.Duration(ns).Round(time.Microsecond)) }
