package cli

import (
	"github.com/spf13/cobra"

	"vipcast/api"
)

// Gateway is the JSON document of `vipcast gateway`: the MAC address every
// encapsulated frame is sent to.
type Gateway struct {
	// MAC is "" while no gateway MAC is known (VIP traffic is dropped then).
	MAC string `json:"mac"`
	// Source is where the MAC came from: "static", "neighbor table", "arp",
	// "ndp", "api", or "" when unknown.
	Source string `json:"source"`
	// NextHop is the address the MAC belongs to, when resolved.
	NextHop string `json:"next_hop"`
	// Error says why the MAC is unknown, when it is.
	Error string `json:"error"`
}

func newGatewayCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Show the gateway MAC in use and where it came from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.GetGateway(cmd.Context(), &api.GetGatewayRequest{})
			if err != nil {
				return err
			}
			gw := Gateway{MAC: resp.GetMac(), Source: resp.GetSource(), NextHop: resp.GetNextHop(), Error: resp.GetError()}
			if a.json {
				return a.printJSON(gw)
			}
			mac := gw.MAC
			if mac == "" {
				mac = "none (VIP traffic is dropped)"
			}
			t := newTable(a.stdout)
			t.row("MAC:", mac)
			t.row("SOURCE:", orDash(gw.Source))
			t.row("NEXT HOP:", orDash(gw.NextHop))
			if gw.Error != "" {
				t.row("ERROR:", gw.Error)
			}
			return t.flush()
		},
	}
	cmd.AddCommand(newGatewaySetCommand(a))
	return cmd
}

func newGatewaySetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "set MAC",
		Short: "Use MAC as the gateway (until reload or restart)",
		Long: `Use MAC as the gateway MAC, overriding what vipcastd resolved, until the
next reload or restart.`,
		Example: `  vipcast gateway set 52:54:00:12:35:02`,
		Args:    positional("MAC (e.g. 52:54:00:12:35:02)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			mac, err := parseMAC(args[0])
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.SetGateway(cmd.Context(), &api.SetGatewayRequest{Mac: mac}); err != nil {
				return err
			}
			return a.printChange(Change{Command: "gateway set", MAC: mac}, "gateway MAC set to "+mac)
		},
	}
}
