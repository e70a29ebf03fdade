package cli

import "testing"

func TestVIP(t *testing.T) {
	runScripts(t, []script{
		{name: "vip_list", steps: []string{
			"vip list",
			"vip list -l",
			"vip list -j",
		}},
		{name: "vip_list_empty", empty: true, steps: []string{
			"vip list",
			"vip list -l",
			"vip list -j",
		}},
		{name: "vip_add", steps: []string{
			"vip add 203.0.113.9:80/tcp",
			"vip add [2001:DB8:F00::2]:443/TCP --flags no_src_port,lru_bypass --ring-size 65521",
			"vip add 203.0.113.10:0/udp --flags dport_only --flags lru_bypass -j",
			"vip list",
		}},
		{name: "vip_del", steps: []string{
			"vip del 203.0.113.2:53/udp",
			"vip del -j [2001:db8:f00::1]:443/tcp",
			"vip list",
		}},
		{name: "vip_set", steps: []string{
			"vip set 203.0.113.1:80/tcp --flags lru_bypass,no_src_port",
			"vip set 203.0.113.2:53/udp --ring-size 65537",
			"vip set 203.0.113.2:53/udp --flags '' -j",
			"vip list",
		}},
		{name: "vip_errors_local", unchanged: true, steps: []string{
			"! vip add 203.0.113.1:80",
			"! vip add 203.0.113.1/tcp",
			"! vip add 2001:db8::1:443/tcp",
			"! vip add [2001:db8::1]/tcp",
			"! vip add 203.0.113.300:80/tcp",
			"! vip add 203.0.113.1:http/tcp",
			"! vip add 203.0.113.1:65536/tcp",
			"! vip add 203.0.113.1:80/sctp",
			"! vip add fe80::1%eth0:80/tcp",
			"! vip add [fe80::1%eth0]:80/tcp",
			"! vip add /tcp",
			"! vip add 203.0.113.9:80/tcp --flags no_such_flag",
			"! vip add 203.0.113.9:80/tcp --ring-size 65536",
			"! vip add 203.0.113.9:80/tcp --ring-size -1",
			"! vip add",
			"! vip add 203.0.113.9:80/tcp 203.0.113.10:80/tcp",
			"! vip set 203.0.113.1:80/tcp",
			"! vip del nonsense",
			"! vip frobnicate",
		}},
		{name: "vip_errors_server", unchanged: true, steps: []string{
			"! vip add 203.0.113.1:80/tcp",
			"! vip del 203.0.113.99:80/tcp",
			"! vip set 203.0.113.99:80/tcp --flags lru_bypass",
			"! vip add -j [2001:db8:f00::1]:443/tcp",
		}},
		{name: "vip_table_full", unchanged: true,
			setup: func(_ *testing.T, f *fakeServer, _ string) { f.maxVIPs = 3 },
			steps: []string{"! vip add 203.0.113.9:80/tcp"}},
	})
}
