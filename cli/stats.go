package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// Stats is the JSON document of `vipcast stats`: counters since the data
// plane was loaded, summed over CPUs.
type Stats struct {
	// ReadAtUnixNano is when vipcastd read the counters.
	ReadAtUnixNano int64       `json:"read_at_unix_nano"`
	Global         GlobalStats `json:"global"`
	// VIPs are sorted by key, their reals by address.
	VIPs []VIPStats `json:"vips"`
}

// GlobalStats are the data plane's global counters; the names are the
// API's (api.GlobalStats).
type GlobalStats struct {
	XDPAborted       uint64 `json:"xdp_aborted"`
	XDPDrop          uint64 `json:"xdp_drop"`
	XDPPass          uint64 `json:"xdp_pass"`
	XDPTx            uint64 `json:"xdp_tx"`
	ConnHit          uint64 `json:"conn_hit"`
	FallbackHit      uint64 `json:"fallback_hit"`
	ConnMissTCPSyn   uint64 `json:"conn_miss_tcp_syn"`
	ConnMissTCPOther uint64 `json:"conn_miss_tcp_other"`
	ConnMissUDP      uint64 `json:"conn_miss_udp"`
	ConnRepickDown   uint64 `json:"conn_repick_down"`
	ICMPEchoReply    uint64 `json:"icmp_echo_reply"`
	ICMPTooBig       uint64 `json:"icmp_too_big"`
	ICMPErrorFwd     uint64 `json:"icmp_error_fwd"`
	DropFragment     uint64 `json:"drop_fragment"`
	DropIPOptions    uint64 `json:"drop_ip_options"`
	DropMalformed    uint64 `json:"drop_malformed"`
	DropNoReal       uint64 `json:"drop_no_real"`
	DropNoGateway    uint64 `json:"drop_no_gateway"`
	DropTooBig       uint64 `json:"drop_too_big"`
	PassMalformed    uint64 `json:"pass_malformed"`
}

// VIPStats counts a VIP's packets and bytes, and its reals'.
type VIPStats struct {
	VIP     string      `json:"vip"`
	Packets uint64      `json:"packets"`
	Bytes   uint64      `json:"bytes"`
	Reals   []RealStats `json:"reals"`
}

// RealStats counts what was sent to one real of a VIP.
type RealStats struct {
	Address string `json:"address"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// StatsRates is one interval of `vipcast stats -w`. With -j each interval is
// one JSON document on a line of its own (JSON Lines). Percentages are of
// connection-table lookups in the interval, and null when there were none.
type StatsRates struct {
	// ReadAtUnixNano is when the interval ended.
	ReadAtUnixNano  int64   `json:"read_at_unix_nano"`
	IntervalSeconds float64 `json:"interval_seconds"`
	// PacketsPerSecond is VIP packets (all VIPs' counters) per second.
	PacketsPerSecond float64  `json:"packets_per_second"`
	ConnHitPercent   *float64 `json:"conn_hit_percent"`
	// ConnMissPercent is the sum of the three miss percentages.
	ConnMissPercent       *float64 `json:"conn_miss_percent"`
	MissTCPSynPercent     *float64 `json:"miss_tcp_syn_percent"`
	MissTCPNonSynPercent  *float64 `json:"miss_tcp_non_syn_percent"`
	MissUDPPercent        *float64 `json:"miss_udp_percent"`
	FallbackHitsPerSecond float64  `json:"fallback_hits_per_second"`
}

func newStatsCommand(a *app) *cobra.Command {
	var watch bool
	var interval time.Duration
	var count int
	cmd := &cobra.Command{
		Use:   "stats [-w [--interval D] [--count N]]",
		Short: "Show data-plane counters, or watch rates (-w)",
		Long: `Show data-plane counters: global, per VIP and per real.

With -w, print one line per interval like Katran's "-s -lru": VIP packets per
second, connection-table hit and miss percentages (misses split into TCP SYN,
TCP non-SYN and UDP) and fallback-table hits per second, until --count lines
were printed or vipcast is interrupted.`,
		Example: `  vipcast stats
  vipcast stats -w --interval 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !watch && (cmd.Flags().Changed("interval") || cmd.Flags().Changed("count")) {
				return fmt.Errorf("stats: --interval and --count need -w")
			}
			if interval <= 0 {
				return fmt.Errorf("invalid --interval %v: must be positive, e.g. 1s", interval)
			}
			if count < 0 {
				return fmt.Errorf("invalid --count %d: must be 0 (until interrupted) or more", count)
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if watch {
				return a.watchStats(cmd.Context(), c, interval, count)
			}
			resp, err := c.GetStats(cmd.Context(), &api.GetStatsRequest{})
			if err != nil {
				return err
			}
			stats := statsDoc(resp)
			if a.json {
				return a.printJSON(stats)
			}
			return a.printStats(stats)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print rates once per interval")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "with -w, time between lines")
	cmd.Flags().IntVar(&count, "count", 0, "with -w, stop after this many lines (0: until interrupted)")
	return cmd
}

func statsDoc(resp *api.GetStatsResponse) Stats {
	g := resp.GetGlobal()
	s := Stats{
		ReadAtUnixNano: resp.GetReadAtUnixNano(),
		Global: GlobalStats{
			XDPAborted:       g.GetXdpAborted(),
			XDPDrop:          g.GetXdpDrop(),
			XDPPass:          g.GetXdpPass(),
			XDPTx:            g.GetXdpTx(),
			ConnHit:          g.GetConnHit(),
			FallbackHit:      g.GetFallbackHit(),
			ConnMissTCPSyn:   g.GetConnMissTcpSyn(),
			ConnMissTCPOther: g.GetConnMissTcpOther(),
			ConnMissUDP:      g.GetConnMissUdp(),
			ConnRepickDown:   g.GetConnRepickDown(),
			ICMPEchoReply:    g.GetIcmpEchoReply(),
			ICMPTooBig:       g.GetIcmpTooBig(),
			ICMPErrorFwd:     g.GetIcmpErrorFwd(),
			DropFragment:     g.GetDropFragment(),
			DropIPOptions:    g.GetDropIpOptions(),
			DropMalformed:    g.GetDropMalformed(),
			DropNoReal:       g.GetDropNoReal(),
			DropNoGateway:    g.GetDropNoGateway(),
			DropTooBig:       g.GetDropTooBig(),
			PassMalformed:    g.GetPassMalformed(),
		},
		VIPs: []VIPStats{},
	}
	vips := slices.Clone(resp.GetVips())
	slices.SortFunc(vips, func(x, y *api.VIPStats) int { return compareVIPs(x.GetKey(), y.GetKey()) })
	for _, v := range vips {
		vs := VIPStats{
			VIP:     formatVIP(v.GetKey()),
			Packets: v.GetCounter().GetPackets(),
			Bytes:   v.GetCounter().GetBytes(),
			Reals:   []RealStats{},
		}
		for _, r := range v.GetReals() {
			vs.Reals = append(vs.Reals, RealStats{
				Address: r.GetAddress(),
				Packets: r.GetCounter().GetPackets(),
				Bytes:   r.GetCounter().GetBytes(),
			})
		}
		slices.SortFunc(vs.Reals, func(x, y RealStats) int { return compareAddrs(x.Address, y.Address) })
		s.VIPs = append(s.VIPs, vs)
	}
	return s
}

// namedCounter is a global counter with its JSON name.
type namedCounter struct {
	name  string
	value uint64
}

// counters lists the global counters in the API's order, for the table.
func (g GlobalStats) counters() []namedCounter {
	return []namedCounter{
		{"xdp_aborted", g.XDPAborted},
		{"xdp_drop", g.XDPDrop},
		{"xdp_pass", g.XDPPass},
		{"xdp_tx", g.XDPTx},
		{"conn_hit", g.ConnHit},
		{"fallback_hit", g.FallbackHit},
		{"conn_miss_tcp_syn", g.ConnMissTCPSyn},
		{"conn_miss_tcp_other", g.ConnMissTCPOther},
		{"conn_miss_udp", g.ConnMissUDP},
		{"conn_repick_down", g.ConnRepickDown},
		{"icmp_echo_reply", g.ICMPEchoReply},
		{"icmp_too_big", g.ICMPTooBig},
		{"icmp_error_fwd", g.ICMPErrorFwd},
		{"drop_fragment", g.DropFragment},
		{"drop_ip_options", g.DropIPOptions},
		{"drop_malformed", g.DropMalformed},
		{"drop_no_real", g.DropNoReal},
		{"drop_no_gateway", g.DropNoGateway},
		{"drop_too_big", g.DropTooBig},
		{"pass_malformed", g.PassMalformed},
	}
}

func (a *app) printStats(s Stats) error {
	t := newTable(a.stdout, "COUNTER", "VALUE")
	for _, c := range s.Global.counters() {
		t.row(c.name, humanCount(c.value))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	t = newTable(a.stdout, "VIP / REAL", "PACKETS", "BYTES")
	for _, v := range s.VIPs {
		t.row(v.VIP, humanCount(v.Packets), humanBytes(v.Bytes))
		for _, r := range v.Reals {
			t.row("  "+r.Address, humanCount(r.Packets), humanBytes(r.Bytes))
		}
	}
	return t.flush()
}

// watchStats prints the rates between consecutive GetStats calls every
// interval, count times (0: until ctx ends, which is not an error).
func (a *app) watchStats(ctx context.Context, c *conn, interval time.Duration, count int) error {
	prev, err := c.GetStats(ctx, &api.GetStatsRequest{})
	if err != nil {
		return err
	}
	prevAt := time.Now()
	if !a.json {
		fmt.Fprintf(a.stdout, watchFormat, "PKTS/S", "HIT", "MISS", "TCP SYN", "TCP NON-SYN", "UDP", "FALLBACK/S")
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for n := 0; count == 0 || n < count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		cur, err := c.GetStats(ctx, &api.GetStatsRequest{})
		if err != nil {
			if ended(ctx) {
				return nil
			}
			return err
		}
		now := time.Now()
		r := rates(prev, cur, now.Sub(prevAt))
		prev, prevAt = cur, now
		if a.json {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n", b)
			if err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(a.stdout, watchFormat, humanFloat(r.PacketsPerSecond),
			percent(r.ConnHitPercent), percent(r.ConnMissPercent),
			percent(r.MissTCPSynPercent), percent(r.MissTCPNonSynPercent), percent(r.MissUDPPercent),
			humanFloat(r.FallbackHitsPerSecond))
	}
	return nil
}

// ended tells whether ctx is over, including a deadline that passed while
// its timer has yet to fire (vipcastd may report it first).
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

const watchFormat = "%8s  %7s  %7s  %8s  %11s  %7s  %10s\n"

func percent(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", *p)
}

// rates computes the interval between two GetStats answers. The interval is
// measured by vipcastd's read times; wall is the fallback for a server that
// does not report them.
func rates(prev, cur *api.GetStatsResponse, wall time.Duration) StatsRates {
	elapsed := time.Duration(cur.GetReadAtUnixNano() - prev.GetReadAtUnixNano())
	if prev.GetReadAtUnixNano() == 0 || elapsed <= 0 {
		elapsed = wall
	}
	secs := elapsed.Seconds()
	perSec := func(n uint64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}

	pg, cg := prev.GetGlobal(), cur.GetGlobal()
	hit := delta(pg.GetConnHit(), cg.GetConnHit())
	syn := delta(pg.GetConnMissTcpSyn(), cg.GetConnMissTcpSyn())
	other := delta(pg.GetConnMissTcpOther(), cg.GetConnMissTcpOther())
	udp := delta(pg.GetConnMissUdp(), cg.GetConnMissUdp())
	lookups := hit + syn + other + udp

	prevVIPs := map[string]uint64{}
	for _, v := range prev.GetVips() {
		prevVIPs[formatVIP(v.GetKey())] = v.GetCounter().GetPackets()
	}
	var packets uint64
	for _, v := range cur.GetVips() {
		packets += delta(prevVIPs[formatVIP(v.GetKey())], v.GetCounter().GetPackets())
	}

	r := StatsRates{
		ReadAtUnixNano:        cur.GetReadAtUnixNano(),
		IntervalSeconds:       secs,
		PacketsPerSecond:      perSec(packets),
		FallbackHitsPerSecond: perSec(delta(pg.GetFallbackHit(), cg.GetFallbackHit())),
	}
	if lookups > 0 {
		pct := func(n uint64) *float64 {
			p := float64(n) / float64(lookups) * 100
			return &p
		}
		r.ConnHitPercent = pct(hit)
		r.ConnMissPercent = pct(syn + other + udp)
		r.MissTCPSynPercent = pct(syn)
		r.MissTCPNonSynPercent = pct(other)
		r.MissUDPPercent = pct(udp)
	}
	return r
}

// delta is how much a counter grew; a counter that went back was reset (a
// new data plane, a re-created VIP) and counts from zero.
func delta(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}
