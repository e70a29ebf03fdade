package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// Drain is the JSON document of `vipcast drain`.
type Drain struct {
	Withdrawn    []string `json:"withdrawn"`
	DrainSeconds int64    `json:"drain_seconds"`
}

func newDrainCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "drain",
		Short: "Withdraw every VIP, let flows finish for drain_time, then stop vipcastd",
		Long: `drain takes this load balancer out of service: vipcastd withdraws every
VIP from its BGP peers at once, waits drain_time (from the configuration)
while established flows finish, and then stops. The data plane stays
attached, as at every stop; start vipcastd again to return to service.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Drain(cmd.Context(), &api.DrainRequest{})
			if err != nil {
				return err
			}
			doc := Drain{Withdrawn: nonNil(resp.GetWithdrawn()), DrainSeconds: resp.GetDrainSeconds()}
			if a.json {
				return a.printJSON(doc)
			}
			list := "none announced"
			if len(doc.Withdrawn) > 0 {
				list = strings.Join(doc.Withdrawn, ", ")
			}
			_, err = fmt.Fprintf(a.stdout, "withdrawn: %s\nvipcastd stops in %s\n", list, time.Duration(doc.DrainSeconds)*time.Second)
			return err
		},
	}
}
