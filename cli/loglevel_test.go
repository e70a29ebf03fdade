package cli

import "testing"

func TestLogLevel(t *testing.T) {
	runScripts(t, []script{
		{name: "log_level", steps: []string{
			"log-level",
			"log-level debug",
			"-j log-level",
			"! log-level loud",
		}},
	})
}
