package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// VIPList is the JSON document of `vipcast vip list`: every VIP, sorted by
// address (IPv4 first), port and protocol.
type VIPList struct {
	VIPs []VIPEntry `json:"vips"`
}

// VIPEntry is one VIP with its reals.
type VIPEntry struct {
	// VIP is the key as vipcast reads it: "203.0.113.1:80/tcp",
	// "[2001:db8::1]:443/tcp".
	VIP      string `json:"vip"`
	Address  string `json:"address"`
	Port     uint32 `json:"port"` // 0: every port
	Protocol string `json:"protocol"`
	// Flags are sorted flag names: no_src_port, lru_bypass, dport_only.
	Flags []string `json:"flags"`
	// RingSize is the Maglev ring size (0: vipcastd's default, 65537).
	RingSize uint32 `json:"ring_size"`
	// Announced tells whether the VIP's address is announced over BGP.
	Announced bool `json:"announced"`
	// RealsUp counts the reals in service: state "up" and health "up" or
	// not checked.
	RealsUp    int `json:"reals_up"`
	RealsTotal int `json:"reals_total"`
	// Reals are sorted by address.
	Reals []RealEntry `json:"reals"`
}

// RealEntry is a real of a VIP.
type RealEntry struct {
	Address string `json:"address"`
	Weight  uint32 `json:"weight"`
	// State is the operator's say: "up", "draining" or "down".
	State string `json:"state"`
	// Health is the checker's: "up", "down", "unknown", or "" when the real
	// is not checked.
	Health string `json:"health"`
}

func newVIPCommand(a *app) *cobra.Command {
	return objectCommand("vip", "Add, delete, change and list VIPs (services)",
		newVIPAddCommand(a),
		newVIPDelCommand(a),
		newVIPListCommand(a),
		newVIPSetCommand(a),
	)
}

func newVIPAddCommand(a *app) *cobra.Command {
	var flags []string
	var ring uint32
	cmd := &cobra.Command{
		Use:   "add ADDR:PORT/PROTO",
		Short: "Add a VIP",
		Example: `  vipcast vip add 203.0.113.1:80/tcp
  vipcast vip add [2001:db8:f00::1]:443/tcp --flags no_src_port,lru_bypass --ring-size 65537`,
		Args: positional("VIP (ADDR:PORT/PROTO)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseVIPKey(args[0])
			if err != nil {
				return err
			}
			vipFlags, err := parseFlags(flags)
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			vip := &api.VIP{Key: key.api(), Flags: vipFlags, RingSize: ring}
			if _, err := c.AddVIP(cmd.Context(), &api.AddVIPRequest{Vip: vip}); err != nil {
				return err
			}
			return a.printChange(Change{Command: "vip add", VIP: key.String(), Flags: &vipFlags, RingSize: &ring},
				"added vip "+key.String())
		},
	}
	cmd.Flags().StringSliceVar(&flags, "flags", nil, "VIP flags, comma-separated: "+strings.Join(vipFlags(), ", "))
	cmd.Flags().Var(ringSizeFlag(&ring), "ring-size", "Maglev ring size, a prime (default: vipcastd's, 65537)")
	return cmd
}

func newVIPDelCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "del ADDR:PORT/PROTO",
		Short:             "Delete a VIP and its reals",
		Args:              positional("VIP (ADDR:PORT/PROTO)"),
		ValidArgsFunction: a.completeVIP,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseVIPKey(args[0])
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.DeleteVIP(cmd.Context(), &api.DeleteVIPRequest{Key: key.api()}); err != nil {
				return err
			}
			return a.printChange(Change{Command: "vip del", VIP: key.String()}, "deleted vip "+key.String())
		},
	}
}

func newVIPSetCommand(a *app) *cobra.Command {
	var flags []string
	var ring uint32
	cmd := &cobra.Command{
		Use:   "set ADDR:PORT/PROTO [--flags F,...] [--ring-size N]",
		Short: "Change a VIP's flags or ring size",
		Long: `Change a VIP's flags or ring size. --flags replaces the whole flag set
(--flags "" clears it); what is not given keeps its value.`,
		Example:           `  vipcast vip set 203.0.113.1:80/tcp --flags lru_bypass`,
		Args:              positional("VIP (ADDR:PORT/PROTO)"),
		ValidArgsFunction: a.completeVIP,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseVIPKey(args[0])
			if err != nil {
				return err
			}
			setFlags, setRing := cmd.Flags().Changed("flags"), cmd.Flags().Changed("ring-size")
			if !setFlags && !setRing {
				return fmt.Errorf("vip set: nothing to change; give --flags and/or --ring-size")
			}
			newFlags, err := parseFlags(flags)
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			// SetVIP replaces flags and ring size together; start from the
			// VIP as it is so that what was not given keeps its value. If
			// the VIP is unknown, vipcastd says so.
			vip := &api.VIP{Key: key.api()}
			if cur, err := findVIP(cmd.Context(), c, key); err != nil {
				return err
			} else if cur != nil {
				vip.Flags, vip.RingSize = cur.GetVip().GetFlags(), cur.GetVip().GetRingSize()
			}
			if setFlags {
				vip.Flags = newFlags
			}
			if setRing {
				vip.RingSize = ring
			}
			if _, err := c.SetVIP(cmd.Context(), &api.SetVIPRequest{Vip: vip}); err != nil {
				return err
			}
			gotFlags := sortedFlags(vip.Flags)
			text := fmt.Sprintf("set vip %s: flags %s, ring %s", key, orDash(strings.Join(gotFlags, ",")), ringText(vip.RingSize))
			return a.printChange(Change{Command: "vip set", VIP: key.String(), Flags: &gotFlags, RingSize: &vip.RingSize}, text)
		},
	}
	cmd.Flags().StringSliceVar(&flags, "flags", nil, "new VIP flags, comma-separated: "+strings.Join(vipFlags(), ", "))
	cmd.Flags().Var(ringSizeFlag(&ring), "ring-size", "new Maglev ring size, a prime")
	return cmd
}

func newVIPListCommand(a *app) *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List VIPs (-l: with their reals)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			vips, err := listVIPs(cmd.Context(), c)
			if err != nil {
				return err
			}
			list := VIPList{VIPs: []VIPEntry{}}
			for _, v := range vips {
				list.VIPs = append(list.VIPs, vipEntry(v))
			}
			switch {
			case a.json:
				return a.printJSON(list)
			case long:
				return a.printVIPsLong(list)
			default:
				return a.printVIPs(list)
			}
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show each VIP's reals with weight, state and health")
	return cmd
}

func (a *app) printVIPs(list VIPList) error {
	t := newTable(a.stdout, "VIP", "FLAGS", "RING", "UP/REALS", "ANNOUNCED")
	for _, v := range list.VIPs {
		t.row(v.VIP, orDash(strings.Join(v.Flags, ",")), ringText(v.RingSize),
			fmt.Sprintf("%d/%d", v.RealsUp, v.RealsTotal), yesNo(v.Announced))
	}
	return t.flush()
}

// printVIPsLong shows each VIP on a line of its own followed by a table of
// its reals, like Katran's `-l`.
func (a *app) printVIPsLong(list VIPList) error {
	if len(list.VIPs) == 0 {
		_, err := fmt.Fprintln(a.stdout, "no VIPs")
		return err
	}
	for i, v := range list.VIPs {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "%s  flags: %s  ring: %s  up/reals: %d/%d  announced: %s\n",
			v.VIP, orDash(strings.Join(v.Flags, ",")), ringText(v.RingSize), v.RealsUp, v.RealsTotal, yesNo(v.Announced))
		if len(v.Reals) == 0 {
			fmt.Fprintln(a.stdout, "  (no reals)")
			continue
		}
		t := newTable(a.stdout, "  REAL", "WEIGHT", "STATE", "HEALTH")
		for _, r := range v.Reals {
			t.row("  "+r.Address, fmt.Sprint(r.Weight), r.State, orDash(r.Health))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}

func ringText(n uint32) string {
	if n == 0 {
		return "default"
	}
	return fmt.Sprint(n)
}

// listVIPs returns vipcastd's VIPs sorted by key, each with its reals
// sorted by address.
func listVIPs(ctx context.Context, c *conn) ([]*api.VIPInfo, error) {
	resp, err := c.ListVIPs(ctx, &api.ListVIPsRequest{})
	if err != nil {
		return nil, err
	}
	vips := resp.GetVips()
	slices.SortFunc(vips, func(x, y *api.VIPInfo) int {
		return compareVIPs(x.GetVip().GetKey(), y.GetVip().GetKey())
	})
	for _, v := range vips {
		slices.SortFunc(v.Reals, func(x, y *api.Real) int { return compareAddrs(x.GetAddress(), y.GetAddress()) })
	}
	return vips, nil
}

// findVIP returns the VIP with key, or nil if vipcastd has none.
func findVIP(ctx context.Context, c *conn, key vipKey) (*api.VIPInfo, error) {
	vips, err := listVIPs(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, v := range vips {
		if formatVIP(v.GetVip().GetKey()) == key.String() {
			return v, nil
		}
	}
	return nil, nil
}

func vipEntry(v *api.VIPInfo) VIPEntry {
	k := v.GetVip().GetKey()
	e := VIPEntry{
		VIP:        formatVIP(k),
		Address:    k.GetAddress(),
		Port:       k.GetPort(),
		Protocol:   k.GetProtocol(),
		Flags:      sortedFlags(v.GetVip().GetFlags()),
		RingSize:   v.GetVip().GetRingSize(),
		Announced:  v.GetAnnounced(),
		RealsTotal: len(v.GetReals()),
		Reals:      []RealEntry{},
	}
	for _, r := range v.GetReals() {
		e.Reals = append(e.Reals, realEntry(r))
		if inService(r) {
			e.RealsUp++
		}
	}
	return e
}

func realEntry(r *api.Real) RealEntry {
	return RealEntry{Address: r.GetAddress(), Weight: r.GetWeight(), State: r.GetState(), Health: r.GetHealth()}
}

// inService tells whether a real takes new flows as far as the operator and
// the checker are concerned.
func inService(r *api.Real) bool {
	return r.GetState() == "up" && (r.GetHealth() == "up" || r.GetHealth() == "")
}

func sortedFlags(flags []string) []string {
	out := append([]string{}, flags...)
	slices.Sort(out)
	return out
}

// completeVIP offers vipcastd's VIPs for a command's first argument.
func (a *app) completeVIP(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeFrom(cmd, func(vips []*api.VIPInfo) []string {
		var out []string
		for _, v := range vips {
			out = append(out, formatVIP(v.GetVip().GetKey()))
		}
		return out
	})
}

// completeReal offers the VIP given as first argument, then its reals.
func (a *app) completeReal(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return a.completeVIP(cmd, args, toComplete)
	case 1:
		key, err := parseVIPKey(args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.completeFrom(cmd, func(vips []*api.VIPInfo) []string {
			var out []string
			for _, v := range vips {
				if formatVIP(v.GetVip().GetKey()) == key.String() {
					for _, r := range v.GetReals() {
						out = append(out, r.GetAddress())
					}
				}
			}
			return out
		})
	default:
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

func (a *app) completeFrom(cmd *cobra.Command, pick func([]*api.VIPInfo) []string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if a.resolveGlobals(cmd, nil) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.connect()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	vips, err := listVIPs(cmd.Context(), c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return pick(vips), cobra.ShellCompDirectiveNoFileComp
}
