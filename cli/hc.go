package cli

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// HCList is the JSON document of `vipcast hc list`: healthcheck
// forwarding marks sorted by mark.
type HCList struct {
	Marks []HCMark `json:"marks"`
}

// HCMark maps a socket mark to the real that health-check packets with it
// are encapsulated to.
type HCMark struct {
	Mark uint32 `json:"mark"`
	Real string `json:"real"`
}

func newHCCommand(a *app) *cobra.Command {
	return objectCommand("hc", "Map socket marks to reals for health-check forwarding",
		newHCAddCommand(a),
		newHCDelCommand(a),
		newHCListCommand(a),
	)
}

func newHCAddCommand(a *app) *cobra.Command {
	var mark uint32
	cmd := &cobra.Command{
		Use:     "add REAL --mark MARK",
		Short:   "Send health checks marked MARK to REAL through its tunnel",
		Example: `  vipcast hc add 198.51.100.11 --mark 1000`,
		Args:    positional("REAL (an IP address)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			real, err := parseReal(args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("mark") {
				return fmt.Errorf("hc add: missing --mark MARK (the socket mark, 1..4294967295)")
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			req := &api.AddHealthcheckMarkRequest{Mark: &api.HealthcheckMark{Mark: mark, Real: real.String()}}
			if _, err := c.AddHealthcheckMark(cmd.Context(), req); err != nil {
				return err
			}
			return a.printChange(Change{Command: "hc add", Mark: mark, Real: real.String()},
				fmt.Sprintf("added hc mark %d -> %s", mark, real))
		},
	}
	cmd.Flags().Var(markFlag(&mark), "mark", "socket mark (SO_MARK) of the checks, 1..4294967295")
	return cmd
}

func newHCDelCommand(a *app) *cobra.Command {
	var flagMark uint32
	cmd := &cobra.Command{
		Use:   "del MARK | del --mark MARK",
		Short: "Delete a mark mapping",
		Args:  rangeArgs(0, 1, "MARK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var marks []uint32
			if cmd.Flags().Changed("mark") {
				marks = append(marks, flagMark)
			}
			for _, s := range args {
				m, err := parseMark(s)
				if err != nil {
					return err
				}
				marks = append(marks, m)
			}
			switch {
			case len(marks) == 0:
				return fmt.Errorf("hc del: missing MARK; give it as an argument or with --mark")
			case len(marks) == 2 && marks[0] != marks[1]:
				return fmt.Errorf("hc del: two different marks given (--mark %d and %d); give one", marks[0], marks[1])
			}
			mark := marks[0]
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.DeleteHealthcheckMark(cmd.Context(), &api.DeleteHealthcheckMarkRequest{Mark: mark}); err != nil {
				return err
			}
			return a.printChange(Change{Command: "hc del", Mark: mark}, fmt.Sprintf("deleted hc mark %d", mark))
		},
	}
	cmd.Flags().Var(markFlag(&flagMark), "mark", "socket mark to delete")
	return cmd
}

func newHCListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List mark -> real mappings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.ListHealthcheckMarks(cmd.Context(), &api.ListHealthcheckMarksRequest{})
			if err != nil {
				return err
			}
			list := HCList{Marks: []HCMark{}}
			for _, m := range resp.GetMarks() {
				list.Marks = append(list.Marks, HCMark{Mark: m.GetMark(), Real: m.GetReal()})
			}
			slices.SortFunc(list.Marks, func(x, y HCMark) int {
				return cmp.Or(cmp.Compare(x.Mark, y.Mark), compareAddrs(x.Real, y.Real))
			})
			if a.json {
				return a.printJSON(list)
			}
			t := newTable(a.stdout, "MARK", "REAL")
			for _, m := range list.Marks {
				t.row(fmt.Sprint(m.Mark), m.Real)
			}
			return t.flush()
		},
	}
}
