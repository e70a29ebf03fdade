package cli

import "testing"

func TestTop(t *testing.T) {
	runScripts(t, []script{
		{name: "top", steps: []string{
			"top --count 1 --interval 10ms",
			"! top --interval 1ms",
			"! -j top --count 1",
		}},
	})
}
