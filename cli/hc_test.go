package cli

import "testing"

func TestHC(t *testing.T) {
	runScripts(t, []script{
		{name: "hc_list", steps: []string{
			"hc list",
			"hc list -j",
		}},
		{name: "hc_add_del", empty: true, steps: []string{
			"hc add 198.51.100.11 --mark 1000",
			"hc add 198.51.100.12 --mark 0x3e9",
			"hc add 2001:db8:1::11 --mark 1002 -j",
			"hc list",
			"hc del 1000",
			"hc del --mark 1001",
			"hc del --mark 0x3ea 1002 -j",
			"hc list -j",
		}},
		{name: "hc_errors", unchanged: true, steps: []string{
			"! hc add 198.51.100.11",
			"! hc add 198.51.100.11 --mark 0",
			"! hc add 198.51.100.11 --mark 4294967296",
			"! hc add 198.51.100.11 --mark abc",
			"! hc add nonsense --mark 1",
			"! hc add 198.51.100.14 --mark 1000",
			"! hc del",
			"! hc del 1000 --mark 1001",
			"! hc del 5000",
			"! hc del -1",
		}},
	})
}
