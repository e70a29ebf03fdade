package cli

import "testing"

func TestDrain(t *testing.T) {
	runScripts(t, []script{
		{name: "drain", steps: []string{"drain", "-j drain"}},
	})
}
