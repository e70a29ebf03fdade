package cli

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// NeighborList is the JSON document of `vipcast neighbor`: BGP peers sorted
// by address.
type NeighborList struct {
	Neighbors []NeighborEntry `json:"neighbors"`
}

// NeighborEntry is one BGP peer.
type NeighborEntry struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is the BGP FSM state, e.g. "established", "active".
	State string `json:"state"`
	// UptimeSeconds is how long the session has been in its state.
	UptimeSeconds int64 `json:"uptime_seconds"`
	// PrefixesSent counts the prefixes announced to the peer.
	PrefixesSent uint64 `json:"prefixes_sent"`
	Description  string `json:"description"`
}

func newNeighborCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "neighbor",
		Short: "Show BGP peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.ListNeighbors(cmd.Context(), &api.ListNeighborsRequest{})
			if err != nil {
				return err
			}
			list := NeighborList{Neighbors: []NeighborEntry{}}
			for _, n := range resp.GetNeighbors() {
				list.Neighbors = append(list.Neighbors, NeighborEntry{
					Address:       n.GetAddress(),
					ASN:           n.GetAsn(),
					State:         n.GetState(),
					UptimeSeconds: n.GetUptimeSeconds(),
					PrefixesSent:  n.GetPrefixesSent(),
					Description:   n.GetDescription(),
				})
			}
			slices.SortFunc(list.Neighbors, func(x, y NeighborEntry) int { return compareAddrs(x.Address, y.Address) })
			if a.json {
				return a.printJSON(list)
			}
			t := newTable(a.stdout, "PEER", "AS", "UP/DOWN", "STATE", "#SENT", "DESCRIPTION")
			for _, n := range list.Neighbors {
				t.row(n.Address, fmt.Sprint(n.ASN), upDown(n.UptimeSeconds, n.State), n.State,
					fmt.Sprint(n.PrefixesSent), orDash(n.Description))
			}
			return t.flush()
		},
	}
}

// upDown shows an established session's age like gobgp: 00:04:10,
// 3d 01:02:03 (00:00:00 in its first second); "never" for a session that
// is not up.
func upDown(secs int64, state string) string {
	if state != "established" {
		return "never"
	}
	secs = max(secs, 0)
	d, rest := secs/86400, secs%86400
	hms := fmt.Sprintf("%02d:%02d:%02d", rest/3600, rest%3600/60, rest%60)
	if d > 0 {
		return fmt.Sprintf("%dd %s", d, hms)
	}
	return hms
}
