package cli

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// HealthList is the JSON document of `vipcast health`: the health of every
// checked real, sorted by VIP, then real.
type HealthList struct {
	Reals []HealthEntry `json:"reals"`
}

// HealthEntry is the checker's view of one real of one VIP.
type HealthEntry struct {
	VIP  string `json:"vip"`
	Real string `json:"real"`
	// State is "up", "down" or "unknown".
	State string `json:"state"`
	// Mark is the socket mark the checks use (0: none).
	Mark uint32 `json:"mark"`
	// LastLatencyNanos is how long the last check took (0: no check yet).
	LastLatencyNanos int64 `json:"last_latency_ns"`
	// LastError is why the last check failed ("" if it passed).
	LastError string `json:"last_error"`
	// LastOK is whether the last check passed.
	LastOK bool `json:"last_ok"`
	// SinceUnixNano is when the state last changed (0: not yet).
	SinceUnixNano int64 `json:"since_unix_nano"`
}

func newHealthCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Show the health checks of every real",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.ListHealth(cmd.Context(), &api.ListHealthRequest{})
			if err != nil {
				return err
			}
			reals := slices.Clone(resp.GetReals())
			slices.SortFunc(reals, func(x, y *api.RealHealth) int {
				return cmp.Or(compareVIPs(x.GetVip(), y.GetVip()), compareAddrs(x.GetReal(), y.GetReal()))
			})
			list := HealthList{Reals: []HealthEntry{}}
			for _, r := range reals {
				list.Reals = append(list.Reals, HealthEntry{
					VIP:              formatVIP(r.GetVip()),
					Real:             r.GetReal(),
					State:            r.GetState(),
					Mark:             r.GetMark(),
					LastLatencyNanos: r.GetLastLatencyNanos(),
					LastError:        r.GetLastError(),
					LastOK:           r.GetLastOk(),
					SinceUnixNano:    r.GetSinceUnixNano(),
				})
			}
			if a.json {
				return a.printJSON(list)
			}
			t := newTable(a.stdout, "VIP", "REAL", "STATE", "SINCE", "MARK", "LATENCY", "LAST ERROR")
			for _, r := range list.Reals {
				mark := "-"
				if r.Mark != 0 {
					mark = fmt.Sprint(r.Mark)
				}
				since := "-"
				if r.SinceUnixNano != 0 {
					since = time.Unix(0, r.SinceUnixNano).UTC().Format(time.DateTime)
				}
				t.row(r.VIP, r.Real, r.State, since, mark, latency(r.LastLatencyNanos), orDash(r.LastError))
			}
			return t.flush()
		},
	}
}

// latency shows a check's duration with three significant digits.
func latency(ns int64) string {
	if ns <= 0 {
		return "-"
	}
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
