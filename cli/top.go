package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// `vipcast top`: a live view for hosts without Prometheus. It redraws, once
// per interval, the packets/s of every VIP and each real's share of them,
// from the difference between two reads of the counters.

func newTopCommand(a *app) *cobra.Command {
	var (
		interval time.Duration
		count    int
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live per-VIP packets/s and each real's share, redrawn every interval",
		Long: `top shows, once per interval until interrupted (or --count redraws),
every VIP's packets and bits per second and how its traffic splits over its
reals. On a terminal the screen is redrawn in place.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 10*time.Millisecond {
				return fmt.Errorf("invalid --interval %v: must be at least 10ms", interval)
			}
			if count < 0 {
				return fmt.Errorf("invalid --count %d: must be 0 (forever) or more", count)
			}
			if a.json {
				return fmt.Errorf("top is for terminals; use `vipcast stats -j` or `stats -w -j` for JSON")
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			prev, err := c.GetStats(ctx, &api.GetStatsRequest{})
			if err != nil {
				return err
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; count == 0 || n < count; n++ {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
				cur, err := c.GetStats(ctx, &api.GetStatsRequest{})
				if err != nil {
					if ended(ctx) {
						return nil
					}
					return err
				}
				if isTerminal(a.stdout) {
					fmt.Fprint(a.stdout, "\x1b[H\x1b[2J") // home, clear
				}
				if err := renderTop(a.stdout, prev, cur); err != nil {
					return err
				}
				prev = cur
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between redraws")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many redraws (0: until interrupted)")
	return cmd
}

// renderTop prints one frame: the interval's rates per VIP and real.
func renderTop(w io.Writer, prev, cur *api.GetStatsResponse) error {
	secs := float64(cur.GetReadAtUnixNano()-prev.GetReadAtUnixNano()) / 1e9
	if secs <= 0 {
		secs = 1
	}
	before := map[string]*api.Counter{}
	for _, v := range prev.GetVips() {
		k := formatVIP(v.GetKey())
		before[k] = v.GetCounter()
		for _, r := range v.GetReals() {
			before[k+"@"+r.GetAddress()] = r.GetCounter()
		}
	}
	rate := func(key string, c *api.Counter) (pps, bps float64) {
		p := before[key]
		return float64(delta(p.GetPackets(), c.GetPackets())) / secs, float64(delta(p.GetBytes(), c.GetBytes())) * 8 / secs
	}
	vips := slices.Clone(cur.GetVips())
	slices.SortFunc(vips, func(a, b *api.VIPStats) int {
		return strings.Compare(formatVIP(a.GetKey()), formatVIP(b.GetKey()))
	})

	fmt.Fprintf(w, "vipcast top — %s, every %.1fs\n\n", time.Unix(0, cur.GetReadAtUnixNano()).UTC().Format("15:04:05 UTC"), secs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VIP / REAL\tPKTS/S\tBITS/S\tSHARE\t")
	for _, v := range vips {
		k := formatVIP(v.GetKey())
		pps, bps := rate(k, v.GetCounter())
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t\n", k, humanFloat(pps), humanFloat(bps))
		reals := slices.Clone(v.GetReals())
		slices.SortFunc(reals, func(a, b *api.RealStats) int { return strings.Compare(a.GetAddress(), b.GetAddress()) })
		for _, r := range reals {
			rpps, rbps := rate(k+"@"+r.GetAddress(), r.GetCounter())
			share := "-"
			if pps > 0 {
				share = fmt.Sprintf("%.1f%%", 100*rpps/pps)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t\n", r.GetAddress(), humanFloat(rpps), humanFloat(rbps), share)
		}
	}
	return tw.Flush()
}

// isTerminal reports whether w is a character device (a terminal): only
// then is the screen cleared between frames.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
