package cli

import "testing"

func TestRIB(t *testing.T) {
	runScripts(t, []script{
		{name: "rib", steps: []string{
			"rib",
			"rib -j",
		}},
		{name: "rib_empty", empty: true, steps: []string{
			"rib",
			"rib -j",
		}},
	})
}
