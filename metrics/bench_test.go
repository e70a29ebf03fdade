package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"vipcast/lb"
)

// BenchmarkScrape measures a scrape of an appliance at the size the issue
// sets: 1,000 VIPs × 10 reals, counters read from the kernel's maps. The
// target is < 100 ms per scrape.
//
//	go test -run '^$' -bench Scrape -benchtime 10x ./metrics/
func BenchmarkScrape(b *testing.B) {
	const vips, realsPerVIP = 1000, 10
	bal := newBalancer(b, lb.Config{
		MaxVIPs: 1024, MaxReals: 16384,
		ConnTableSize: 4096, FallbackTableSize: 1024, GatewayMAC: gwMAC,
	})
	for i := range vips {
		k := lb.VIPKey{Addr: netip.AddrFrom4([4]byte{10, 100, byte(i / 250), byte(1 + i%250)}), Port: 80, Proto: lb.TCP}
		// A small prime ring keeps the setup fast; the scrape does not read rings.
		if err := bal.AddVIP(lb.VIP{Key: k, RingSize: 1021}); err != nil {
			b.Fatal(err)
		}
		reals := make([]lb.Real, realsPerVIP)
		for j := range reals {
			reals[j] = lb.Real{Addr: netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(j*25 + 1 + i%25)}), Weight: 1}
		}
		reals[0].State = lb.Draining
		if err := bal.SetReals(k, reals); err != nil {
			b.Fatal(err)
		}
	}
	health := make([]RealHealth, 0, vips*realsPerVIP)
	for _, v := range bal.VIPs() {
		for _, r := range v.Reals {
			health = append(health, RealHealth{VIP: v.Key, Real: r.Addr, Healthy: true})
		}
	}
	c := NewCollector(Source{
		DataPlane:    bal,
		RealHealth:   func() []RealHealth { return health },
		Announced:    func() []netip.Addr { return nil },
		GatewayKnown: func() bool { return true },
		BuildVersion: "bench",
	})
	reg := NewRegistry(c)
	srv := httptest.NewServer(Handler(reg))
	b.Cleanup(srv.Close)

	get := func(b *testing.B, gz bool) int64 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+Path, nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		// A bare Transport: no transparent gunzip, so the body is measured as sent.
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %s", resp.Status)
		}
		if gz && resp.Header.Get("Content-Encoding") != "gzip" {
			b.Fatalf("asked for gzip, got %q", resp.Header.Get("Content-Encoding"))
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}

	b.Run("gather", func(b *testing.B) {
		var series int
		for b.Loop() {
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			series = 0
			for _, mf := range mfs {
				series += len(mf.GetMetric())
			}
		}
		b.ReportMetric(float64(series), "series")
	})
	b.Run("http-text", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n = get(b, false)
		}
		b.ReportMetric(float64(n), "body-bytes")
	})
	b.Run("http-gzip", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n = get(b, true)
		}
		b.ReportMetric(float64(n), "body-bytes")
	})
}
