package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// RouteList is the JSON document of `vipcast rib`: the prefixes announced
// over BGP, sorted.
type RouteList struct {
	Routes []RouteEntry `json:"routes"`
}

// RouteEntry is one announced prefix and its attributes.
type RouteEntry struct {
	Prefix      string   `json:"prefix"`
	Communities []string `json:"communities"`
	// MED and LocalPref are null when not set.
	MED       *uint32 `json:"med"`
	LocalPref *uint32 `json:"local_pref"`
}

func newRIBCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rib",
		Short: "Show the prefixes announced over BGP",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.ListRoutes(cmd.Context(), &api.ListRoutesRequest{})
			if err != nil {
				return err
			}
			list := RouteList{Routes: []RouteEntry{}}
			for _, r := range resp.GetRoutes() {
				list.Routes = append(list.Routes, RouteEntry{
					Prefix:      r.GetPrefix(),
					Communities: nonNil(slices.Clone(r.GetCommunities())),
					MED:         r.Med,
					LocalPref:   r.LocalPref,
				})
			}
			slices.SortFunc(list.Routes, func(x, y RouteEntry) int { return comparePrefixes(x.Prefix, y.Prefix) })
			if a.json {
				return a.printJSON(list)
			}
			t := newTable(a.stdout, "PREFIX", "MED", "LOCAL PREF", "COMMUNITIES")
			for _, r := range list.Routes {
				t.row(r.Prefix, optional(r.MED), optional(r.LocalPref), orDash(strings.Join(r.Communities, " ")))
			}
			return t.flush()
		},
	}
}

func optional(v *uint32) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}
