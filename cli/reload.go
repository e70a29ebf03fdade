package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vipcast/api"
)

// Reload is the JSON document of `vipcast reload`: one line per change
// applied, in the order vipcastd applied them.
type Reload struct {
	Changes []string `json:"changes"`
}

func newReloadCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Re-read the configuration file and apply the difference",
		Long: `Ask vipcastd to re-read its configuration file and apply only what
changed; flows of untouched VIPs are not disturbed. Changes made with vipcast
since the last reload are undone. A bad file is rejected as a whole and the
running state kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Reload(cmd.Context(), &api.ReloadRequest{})
			if err != nil {
				if code := status.Code(err); code == codes.InvalidArgument || code == codes.FailedPrecondition {
					return fmt.Errorf("reload rejected, running state kept: %w", err)
				}
				return err
			}
			doc := Reload{Changes: nonNil(resp.GetChanges())}
			if a.json {
				return a.printJSON(doc)
			}
			if len(doc.Changes) == 0 {
				_, err := fmt.Fprintln(a.stdout, "no changes")
				return err
			}
			for _, ch := range doc.Changes {
				if _, err := fmt.Fprintln(a.stdout, ch); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
