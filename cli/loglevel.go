package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"vipcast/api"
)

// LogLevel is the JSON document of `vipcast log-level`.
type LogLevel struct {
	Level    string `json:"level"`
	Previous string `json:"previous"`
}

func newLogLevelCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "log-level [debug|info|warn|error]",
		Short: "Show or change vipcastd's log level",
		Long: `Without an argument, show vipcastd's log level; with one, change it until
the next restart (vipcastd's -log-level flag sets it at start).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &api.LogLevelRequest{}
			if len(args) == 1 {
				switch args[0] {
				case "debug", "info", "warn", "error":
					req.Level = args[0]
				default:
					return fmt.Errorf("invalid log level %q: want debug, info, warn or error", args[0])
				}
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.LogLevel(cmd.Context(), req)
			if err != nil {
				return err
			}
			doc := LogLevel{Level: resp.GetLevel(), Previous: resp.GetPrevious()}
			if a.json {
				return a.printJSON(doc)
			}
			if req.Level != "" && doc.Previous != doc.Level {
				_, err = fmt.Fprintf(a.stdout, "log level %s (was %s)\n", doc.Level, doc.Previous)
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "log level %s\n", doc.Level)
			return err
		},
	}
}
