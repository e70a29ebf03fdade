package cli

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"vipcast/api"
)

// RealList is the JSON document of `vipcast real list [VIP]`: reals sorted
// by VIP, then address.
type RealList struct {
	Reals []RealListEntry `json:"reals"`
}

// RealListEntry is a real with the VIP it belongs to.
type RealListEntry struct {
	VIP string `json:"vip"`
	RealEntry
}

// Real states as vipcastd names them.
const (
	stateUp       = "up"
	stateDraining = "draining"
	stateDown     = "down"
)

func newRealCommand(a *app) *cobra.Command {
	return objectCommand("real", "Add, delete, change, drain and list the reals of VIPs",
		newRealAddCommand(a),
		newRealDelCommand(a),
		newRealSetCommand(a),
		newRealDrainCommand(a, "drain", stateDraining,
			"Stop sending new flows to a real; established flows stay"),
		newRealDrainCommand(a, "undrain", stateUp, "Put a drained real back in service"),
		newRealListCommand(a),
	)
}

// realArgs parses the VIP and REAL arguments every real verb takes.
func realArgs(args []string) (vipKey, netip.Addr, error) {
	key, err := parseVIPKey(args[0])
	if err != nil {
		return vipKey{}, netip.Addr{}, err
	}
	real, err := parseReal(args[1])
	if err != nil {
		return vipKey{}, netip.Addr{}, err
	}
	return key, real, nil
}

func newRealAddCommand(a *app) *cobra.Command {
	weight := uint32(1)
	cmd := &cobra.Command{
		Use:   "add VIP REAL [--weight N]",
		Short: "Add a real to a VIP",
		Example: `  vipcast real add 203.0.113.1:80/tcp 198.51.100.11 --weight 10
  vipcast real add [2001:db8:f00::1]:443/tcp 2001:db8:1::11`,
		Args:              positional("VIP (ADDR:PORT/PROTO)", "REAL (an IP address)"),
		ValidArgsFunction: a.completeVIP,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, real, err := realArgs(args)
			if err != nil {
				return err
			}
			w := weight
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			req := &api.AddRealRequest{Vip: key.api(), Real: &api.Real{Address: real.String(), Weight: w}}
			if _, err := c.AddReal(cmd.Context(), req); err != nil {
				return err
			}
			return a.printChange(Change{Command: "real add", VIP: key.String(), Real: real.String(), Weight: &w},
				fmt.Sprintf("added real %s to vip %s (weight %d)", real, key, w))
		},
	}
	cmd.Flags().Var(weightFlag(&weight), "weight", fmt.Sprintf("share of new flows, 0..%d (0: none)", maxWeight))
	return cmd
}

func newRealDelCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "del VIP REAL",
		Short:             "Delete a real from a VIP",
		Args:              positional("VIP (ADDR:PORT/PROTO)", "REAL (an IP address)"),
		ValidArgsFunction: a.completeReal,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, real, err := realArgs(args)
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			req := &api.DeleteRealRequest{Vip: key.api(), Address: real.String()}
			if _, err := c.DeleteReal(cmd.Context(), req); err != nil {
				return err
			}
			return a.printChange(Change{Command: "real del", VIP: key.String(), Real: real.String()},
				fmt.Sprintf("deleted real %s from vip %s", real, key))
		},
	}
}

func newRealSetCommand(a *app) *cobra.Command {
	var weight uint32
	var state string
	cmd := &cobra.Command{
		Use:               "set VIP REAL [--weight N] [--state up|draining|down]",
		Short:             "Change a real's weight or state",
		Example:           `  vipcast real set 203.0.113.1:80/tcp 198.51.100.11 --weight 20`,
		Args:              positional("VIP (ADDR:PORT/PROTO)", "REAL (an IP address)"),
		ValidArgsFunction: a.completeReal,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, real, err := realArgs(args)
			if err != nil {
				return err
			}
			setWeight, setState := cmd.Flags().Changed("weight"), cmd.Flags().Changed("state")
			if !setWeight && !setState {
				return fmt.Errorf("real set: nothing to change; give --weight and/or --state")
			}
			req := &api.SetRealRequest{Vip: key.api(), Address: real.String()}
			ch := Change{Command: "real set", VIP: key.String(), Real: real.String()}
			text := fmt.Sprintf("set real %s of vip %s:", real, key)
			if setWeight {
				w := weight
				req.Weight, ch.Weight = proto.Uint32(w), &w
				text += fmt.Sprintf(" weight %d", w)
			}
			if setState {
				switch state {
				case stateUp, stateDraining, stateDown:
				default:
					return fmt.Errorf("invalid --state %q: must be up, draining or down", state)
				}
				req.State, ch.State = proto.String(state), state
				text += " state " + state
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.SetReal(cmd.Context(), req); err != nil {
				return err
			}
			return a.printChange(ch, text)
		},
	}
	cmd.Flags().Var(weightFlag(&weight), "weight", fmt.Sprintf("new weight, 0..%d", maxWeight))
	cmd.Flags().StringVar(&state, "state", "", "new state: up, draining or down")
	return cmd
}

// newRealDrainCommand builds drain and undrain, which set a real's state.
func newRealDrainCommand(a *app, verb, state, short string) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " VIP REAL",
		Short:             short,
		Args:              positional("VIP (ADDR:PORT/PROTO)", "REAL (an IP address)"),
		ValidArgsFunction: a.completeReal,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, real, err := realArgs(args)
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			req := &api.SetRealRequest{Vip: key.api(), Address: real.String(), State: proto.String(state)}
			if _, err := c.SetReal(cmd.Context(), req); err != nil {
				return err
			}
			return a.printChange(Change{Command: "real " + verb, VIP: key.String(), Real: real.String(), State: state},
				fmt.Sprintf("real %s of vip %s is %s", real, key, state))
		},
	}
}

func newRealListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "list [VIP]",
		Short:             "List the reals of every VIP, or of one",
		Args:              rangeArgs(0, 1, "VIP (ADDR:PORT/PROTO)"),
		ValidArgsFunction: a.completeVIP,
		RunE: func(cmd *cobra.Command, args []string) error {
			var only *vipKey
			if len(args) == 1 {
				key, err := parseVIPKey(args[0])
				if err != nil {
					return err
				}
				only = &key
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			vips, err := listVIPs(cmd.Context(), c)
			if err != nil {
				return err
			}
			list := RealList{Reals: []RealListEntry{}}
			found := false
			for _, v := range vips {
				name := formatVIP(v.GetVip().GetKey())
				if only != nil && name != only.String() {
					continue
				}
				found = true
				for _, r := range v.GetReals() {
					list.Reals = append(list.Reals, RealListEntry{VIP: name, RealEntry: realEntry(r)})
				}
			}
			if only != nil && !found {
				return fmt.Errorf("vip %s: not found", only)
			}
			if a.json {
				return a.printJSON(list)
			}
			t := newTable(a.stdout, "VIP", "REAL", "WEIGHT", "STATE", "HEALTH")
			for _, r := range list.Reals {
				t.row(r.VIP, r.Address, fmt.Sprint(r.Weight), r.State, orDash(r.Health))
			}
			return t.flush()
		},
	}
}
