// Package cli is the vipcast command line: cobra commands that drive
// vipcastd over its gRPC API, gobgp-style (`vipcast <object> <verb> [args]`).
//
// Every command prints either aligned tables for people or, with -j, one
// JSON document whose schema is defined by the exported types of this package
// and described in README.md. Errors go to stderr prefixed "vipcast: " and
// make Execute return 1.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// DefaultSocket is where vipcastd serves its API unless told otherwise.
const DefaultSocket = "/run/vipcast/vipcast.sock"

// SocketEnv names the environment variable that overrides DefaultSocket
// (the --socket flag overrides both).
const SocketEnv = "VIPCAST_SOCKET"

// app holds what every command shares: where output goes and the global
// flags. One app per root command, so commands built for tests do not share
// state.
type app struct {
	stdout, stderr io.Writer
	json           bool
	socket         string
	timeout        time.Duration
}

// NewRootCommand builds the vipcast command tree writing to stdout and
// stderr. Run it with Execute to get vipcast's error format and exit status.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "vipcast",
		Short: "Control vipcastd, the vipcast L4 load balancer",
		Long: `vipcast controls vipcastd over its API socket.

Commands read "vipcast <object> <verb> [args]"; any unambiguous prefix of an
object or verb works, and where prefixes are shared the objects listed first
win: "vipcast v l" is "vipcast vip list", "vipcast r l" is "vipcast real list".

Changes made with vipcast are live-only: "vipcast reload" and a restart of
vipcastd return to the configuration file.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: a.resolveGlobals,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if strings.HasPrefix(err.Error(), "unknown") {
			return fmt.Errorf("%w\nRun '%s --help' for usage", err, cmd.CommandPath())
		}
		return err
	})

	pf := root.PersistentFlags()
	pf.BoolVarP(&a.json, "json", "j", false, "print one JSON document (schemas in the vipcast CLI README)")
	pf.StringVar(&a.socket, "socket", DefaultSocket, "vipcastd's API socket (or set "+SocketEnv+")")
	pf.DurationVar(&a.timeout, "timeout", 5*time.Second, "how long to wait for each answer from vipcastd")

	root.AddCommand(
		newVIPCommand(a),
		newRealCommand(a),
		newHCCommand(a),
		newStatsCommand(a),
		newTopCommand(a),
		newGatewayCommand(a),
		newHealthCommand(a),
		newNeighborCommand(a),
		newRIBCommand(a),
		newReloadCommand(a),
		newVersionCommand(a),
		newLogLevelCommand(a),
		newDrainCommand(a),
		newRealSetupCommand(a),
		newXDPRootCommand(a),
	)
	// Cobra adds these when executing; adding them now lets them take part
	// in prefix matching ("vipcast c bash", "vipcast hel").
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	// Where objects share a prefix, the ones listed first win: `vipcast v`
	// is vip (not version), `r` is real, `h` is hc, `he` is health.
	addPrefixAliases(root, []string{
		"vip", "real", "hc", "stats", "top", "gateway", "health", "neighbor", "rib",
		"reload", "version", "completion", "help", "log-level", "drain", "real-setup", "xdp-root",
	})
	return root
}

// Execute runs root (with ctx for cancellation) and returns the process exit
// status: 0 on success, 1 after printing "vipcast: <error>" to root's
// stderr.
func Execute(ctx context.Context, root *cobra.Command) int {
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(root.ErrOrStderr(), "vipcast: %s\n", strings.TrimRight(err.Error(), "\n"))
		return 1
	}
	return 0
}

// resolveGlobals applies $VIPCAST_SOCKET and checks the global flags before
// any command runs.
func (a *app) resolveGlobals(cmd *cobra.Command, _ []string) error {
	if !cmd.Flags().Changed("socket") {
		if s, ok := os.LookupEnv(SocketEnv); ok && s != "" {
			a.socket = s
		}
	}
	if a.socket == "" {
		return fmt.Errorf("invalid --socket \"\": give the path of vipcastd's API socket")
	}
	if a.timeout <= 0 {
		return fmt.Errorf("invalid --timeout %v: must be positive, e.g. 5s", a.timeout)
	}
	return nil
}

// addPrefixAliases makes every prefix of a subcommand's name an alias of it,
// recursively, so "vipcast v l" finds "vipcast vip list". A prefix shared by
// siblings goes to the first of them in order (then alphabetical order);
// names and real aliases always win over prefixes. Aliases are used instead
// of cobra.EnablePrefixMatching because that is a package-level switch and
// gives up on shared prefixes.
func addPrefixAliases(parent *cobra.Command, order []string) {
	children := append([]*cobra.Command(nil), parent.Commands()...)
	rank := func(c *cobra.Command) int {
		for i, name := range order {
			if c.Name() == name {
				return i
			}
		}
		return len(order)
	}
	sort.SliceStable(children, func(i, j int) bool {
		ri, rj := rank(children[i]), rank(children[j])
		if ri != rj {
			return ri < rj
		}
		return children[i].Name() < children[j].Name()
	})
	taken := map[string]bool{}
	for _, c := range children {
		taken[c.Name()] = true
		for _, alias := range c.Aliases {
			taken[alias] = true
		}
	}
	for _, c := range children {
		name := c.Name()
		for n := 1; n < len(name); n++ {
			if p := name[:n]; !taken[p] {
				taken[p] = true
				c.Aliases = append(c.Aliases, p)
			}
		}
		addPrefixAliases(c, nil)
	}
}

// usageTemplate is cobra's default without the "Aliases:" section, which
// would list every generated prefix.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

// objectCommand is a command that groups verbs: run without a verb it shows
// its help; with an unknown verb it fails.
func objectCommand(use, short string, verbs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	c.AddCommand(verbs...)
	return c
}

// positional checks a command's positional arguments by name, so a missing
// or extra argument says which one and shows the usage line.
func positional(names ...string) cobra.PositionalArgs {
	return rangeArgs(len(names), len(names), names...)
}

// rangeArgs is positional with optional trailing arguments: between min and
// max of names.
func rangeArgs(min, max int, names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		verb := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
		switch {
		case len(args) < min:
			return fmt.Errorf("%s: missing %s\nUsage: %s", verb, names[len(args)], cmd.UseLine())
		case len(args) > max:
			return fmt.Errorf("%s: unexpected argument %q\nUsage: %s", verb, args[max], cmd.UseLine())
		}
		return nil
	}
}
