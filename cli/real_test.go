package cli

import "testing"

func TestReal(t *testing.T) {
	runScripts(t, []script{
		{name: "real_list", steps: []string{
			"real list",
			"real list 203.0.113.2:53/udp",
			"real list -j [2001:db8:f00::1]:443/tcp",
			"real list -j",
		}},
		{name: "real_add", steps: []string{
			"real add 203.0.113.1:80/tcp 198.51.100.14",
			"real add 203.0.113.1:80/tcp 198.51.100.15 --weight 65535",
			"real add 203.0.113.1:80/tcp 2001:db8:1::15 --weight 0 -j",
			"real add [2001:db8:f00::1]:443/tcp 2001:DB8:1::12 --weight 10",
			"real list 203.0.113.1:80/tcp",
			"real list [2001:db8:f00::1]:443/tcp",
		}},
		{name: "real_del", steps: []string{
			"real del 203.0.113.1:80/tcp 198.51.100.13",
			"real del -j 203.0.113.2:53/udp 2001:db8:1::21",
			"real list",
		}},
		{name: "real_set_drain", steps: []string{
			"real set 203.0.113.1:80/tcp 198.51.100.13 --weight 20",
			"real set 203.0.113.1:80/tcp 198.51.100.13 --state down -j",
			"real set 203.0.113.1:80/tcp 198.51.100.13 --weight 0 --state up",
			"real drain 203.0.113.1:80/tcp 198.51.100.11",
			"real undrain 203.0.113.1:80/tcp 198.51.100.12",
			"real drain -j [2001:db8:f00::1]:443/tcp 2001:db8:1::11",
			"vip list -l",
		}},
		{name: "real_errors_local", unchanged: true, steps: []string{
			"! real add 203.0.113.1:80/tcp 198.51.100.300",
			"! real add 203.0.113.1:80/tcp 198.51.100.14:80",
			"! real add 203.0.113.1:80 198.51.100.14",
			"! real add 203.0.113.1:80/tcp 198.51.100.14 --weight 65536",
			"! real add 203.0.113.1:80/tcp 198.51.100.14 --weight -1",
			"! real add 203.0.113.1:80/tcp 198.51.100.14 --weight ten",
			"! real add 203.0.113.1:80/tcp",
			"! real set 203.0.113.1:80/tcp 198.51.100.11",
			"! real set 203.0.113.1:80/tcp 198.51.100.11 --weight 100000",
			"! real set 203.0.113.1:80/tcp 198.51.100.11 --state drain",
			"! real drain 203.0.113.1:80/tcp",
			"! real list 203.0.113.1",
		}},
		{name: "real_errors_server", unchanged: true, steps: []string{
			"! real add [2001:db8:f00::1]:443/tcp 198.51.100.11",
			"! real add 203.0.113.99:80/tcp 198.51.100.11",
			"! real add 203.0.113.1:80/tcp 198.51.100.11",
			"! real del 203.0.113.1:80/tcp 198.51.100.99",
			"! real set 203.0.113.1:80/tcp 198.51.100.99 --weight 5",
			"! real drain 203.0.113.99:80/tcp 198.51.100.11",
			"! real list 203.0.113.99:80/tcp",
		}},
	})
}
