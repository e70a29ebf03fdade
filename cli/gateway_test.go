package cli

import "testing"

func TestGateway(t *testing.T) {
	runScripts(t, []script{
		{name: "gateway", steps: []string{
			"gateway",
			"gateway -j",
		}},
		{name: "gateway_unknown", empty: true, steps: []string{
			"gateway",
			"gateway -j",
		}},
		{name: "gateway_set", steps: []string{
			"gateway set 52:54:00:AB:CD:EF",
			"gateway set -j 52-54-00-ab-cd-01",
			"gateway",
		}},
		{name: "gateway_errors", unchanged: true, steps: []string{
			"! gateway set zz:zz",
			"! gateway set ff:ff:ff:ff:ff:ff",
			"! gateway set 01:00:5e:00:00:01",
			"! gateway set",
			"! gateway frob",
		}},
	})
}
