package cli

import "testing"

func TestVersion(t *testing.T) {
	runScripts(t, []script{
		{name: "version", steps: []string{
			"version",
			"version -j",
		}},
		{name: "version_unreachable", steps: []string{
			"! version --socket $DIR/missing.sock",
			"! version --socket $DIR/missing.sock -j",
		}},
	})
}
