package cli

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestReload(t *testing.T) {
	runScripts(t, []script{
		{name: "reload", steps: []string{
			"reload",
			"reload -j",
		}},
		{name: "reload_nothing", empty: true, steps: []string{
			"reload",
			"reload -j",
		}},
		{name: "reload_bad_file", unchanged: true,
			setup: func(_ *testing.T, f *fakeServer, _ string) {
				f.reload = status.Error(codes.InvalidArgument,
					"/etc/vipcast/vipcast.toml:12:3: vip[2].real[0].weight: must be 0..65535, got -1")
			},
			steps: []string{
				"! reload",
				"! reload -j",
			}},
	})
}
