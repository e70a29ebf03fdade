package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"vipcast/api"
	"vipcast/internal/version"
)

// Version is the JSON document of `vipcast version`. Server is absent when
// vipcastd could not be asked (vipcast then exits 1).
type Version struct {
	Client ClientVersion  `json:"client"`
	Server *ServerVersion `json:"server,omitempty"`
}

// ClientVersion is this vipcast's version.
type ClientVersion struct {
	Version string `json:"version"`
}

// ServerVersion is vipcastd's version and the Go it was built with.
type ServerVersion struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
}

func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the versions of vipcast and vipcastd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc := Version{Client: ClientVersion{Version: version.String()}}
			var serverErr error
			c, err := a.connect()
			if err == nil {
				defer c.Close()
				resp, err := c.GetVersion(cmd.Context(), &api.GetVersionRequest{})
				if err == nil {
					doc.Server = &ServerVersion{Version: resp.GetVersion(), GoVersion: resp.GetGoVersion()}
				}
				serverErr = err
			} else {
				serverErr = err
			}
			// Print what is known even when the server is not, then fail.
			if a.json {
				if err := a.printJSON(doc); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "client: %s\n", doc.Client.Version)
				if doc.Server != nil {
					fmt.Fprintf(a.stdout, "server: %s (%s)\n", doc.Server.Version, doc.Server.GoVersion)
				}
			}
			if serverErr != nil {
				return fmt.Errorf("cannot get the server version: %w", serverErr)
			}
			return nil
		},
	}
}
