package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// One case per validation rule, each with the exact message and position.
func TestValidationRules(t *testing.T) {
	runErrCases(t, []errCase{
		// Top level.
		{
			name: "interface required",
			doc:  "mode = \"standalone\"\n",
			want: "vipcast.toml: interface: required: the network interface the balancer attaches to",
		},
		{
			name: "interface name",
			doc:  "interface = \"eth0/1\"\n",
			want: `vipcast.toml:1:1: interface: must be an interface name (1..15 characters, no '/', ':' or whitespace), got "eth0/1"`,
		},
		{
			name: "interface name length",
			doc:  "interface = \"a-very-long-ifname\"\n",
			want: `vipcast.toml:1:1: interface: must be an interface name (1..15 characters, no '/', ':' or whitespace), got "a-very-long-ifname"`,
		},
		{
			name: "shared mode needs root_map_path and prog_position",
			doc:  "interface = \"eth0\"\nmode = \"shared\"\n",
			want: "vipcast.toml: prog_position: required when mode = \"shared\"\nvipcast.toml: root_map_path: required when mode = \"shared\"",
		},
		{
			name: "root_map_path must be absolute",
			doc:  "interface = \"eth0\"\nmode = \"shared\"\nroot_map_path = \"vipcast/root\"\nprog_position = 0\n",
			want: `vipcast.toml:3:1: root_map_path: must be an absolute path (of the pinned prog array), got "vipcast/root"`,
		},
		{
			name: "shared-mode keys in standalone mode",
			doc:  "interface = \"eth0\"\nroot_map_path = \"/sys/fs/bpf/root\"\nprog_position = 1\n",
			want: "vipcast.toml:2:1: root_map_path: only used when mode = \"shared\", got \"/sys/fs/bpf/root\"\nvipcast.toml:3:1: prog_position: only used when mode = \"shared\", got 1",
		},
		{
			name: "prog_position range",
			doc:  "interface = \"eth0\"\nmode = \"shared\"\nroot_map_path = \"/sys/fs/bpf/root\"\nprog_position = 256\n",
			want: "vipcast.toml:4:1: prog_position: must be 0..255, got 256",
		},
		{
			name: "xdp_mode",
			doc:  "interface = \"eth0\"\nxdp_mode = \"offload\"\n",
			want: `vipcast.toml:2:1: xdp_mode: must be "native", "generic" or "auto", got "offload"`,
		},
		{
			name: "gateway_mac multicast",
			doc:  "interface = \"eth0\"\ngateway_mac = \"01:00:5e:00:00:01\"\n",
			want: `vipcast.toml:2:1: gateway_mac: must be "auto" or a unicast Ethernet address such as "52:54:00:12:35:02", got "01:00:5e:00:00:01"`,
		},
		{
			name: "gateway_mac all zero",
			doc:  "interface = \"eth0\"\ngateway_mac = \"00:00:00:00:00:00\"\n",
			want: `vipcast.toml:2:1: gateway_mac: must be "auto" or a unicast Ethernet address such as "52:54:00:12:35:02", got "00:00:00:00:00:00"`,
		},
		{
			name: "gateway_mac not 6 bytes",
			doc:  "interface = \"eth0\"\ngateway_mac = \"02:00:5e:10:00:00:00:01\"\n",
			want: `vipcast.toml:2:1: gateway_mac: must be "auto" or a unicast Ethernet address such as "52:54:00:12:35:02", got "02:00:5e:10:00:00:00:01"`,
		},
		{
			name: "forwarding_cores negative",
			doc:  "interface = \"eth0\"\nforwarding_cores = [0, -1]\n",
			want: "vipcast.toml:2:24: forwarding_cores[1]: must be 0..8191, got -1",
		},
		{
			name: "forwarding_cores unique",
			doc:  "interface = \"eth0\"\nforwarding_cores = [0, 1, 0]\n",
			want: "vipcast.toml:2:27: forwarding_cores[2]: listed twice (also forwarding_cores[0]), got 0",
		},
		{
			name: "numa_nodes length",
			doc:  "interface = \"eth0\"\nforwarding_cores = [0, 1, 2]\nnuma_nodes = [0, 1]\n",
			want: "vipcast.toml:3:1: numa_nodes: must have one entry per forwarding core (3), got 2",
		},
		{
			name: "numa_nodes without forwarding_cores",
			doc:  "interface = \"eth0\"\nnuma_nodes = [0]\n",
			want: "vipcast.toml:2:1: numa_nodes: needs forwarding_cores: one node per listed core",
		},
		{
			name: "numa_nodes range",
			doc:  "interface = \"eth0\"\nforwarding_cores = [0]\nnuma_nodes = [1024]\n",
			want: "vipcast.toml:3:15: numa_nodes[0]: must be 0..1023, got 1024",
		},
		{
			name: "lru_size at least one entry per core",
			doc:  "interface = \"eth0\"\nforwarding_cores = [0, 1, 2]\nlru_size = 2\n",
			want: "vipcast.toml:3:1: lru_size: must be at least the number of forwarding cores (3), got 2",
		},
		{
			name: "lru_size bounded",
			doc:  "interface = \"eth0\"\nlru_size = 1000000000\n",
			want: "vipcast.toml:2:1: lru_size: must be 1..268435456, got 1000000000",
		},
		{
			name: "fallback_lru_size",
			doc:  "interface = \"eth0\"\nfallback_lru_size = 0\n",
			want: "vipcast.toml:2:1: fallback_lru_size: must be 1..268435456, got 0",
		},
		{
			name: "tunnel_mtu",
			doc:  "interface = \"eth0\"\ntunnel_mtu = 9217\n",
			want: "vipcast.toml:2:1: tunnel_mtu: must be 1280..9216, got 9217",
		},
		{
			name: "tunnel_source_v4 must be a /16",
			doc:  "interface = \"eth0\"\ntunnel_source_v4 = \"172.16.0.0/24\"\n",
			want: `vipcast.toml:2:1: tunnel_source_v4: must be an IPv4 /16 such as "172.16.0.0/16" (no host bits), got "172.16.0.0/24"`,
		},
		{
			name: "tunnel_source_v4 host bits",
			doc:  "interface = \"eth0\"\ntunnel_source_v4 = \"172.16.1.0/16\"\n",
			want: `vipcast.toml:2:1: tunnel_source_v4: must be an IPv4 /16 such as "172.16.0.0/16" (no host bits), got "172.16.1.0/16"`,
		},
		{
			name: "tunnel_source_v6 must be a /96",
			doc:  "interface = \"eth0\"\ntunnel_source_v6 = \"100::/64\"\n",
			want: `vipcast.toml:2:1: tunnel_source_v6: must be an IPv6 /96 such as "100::/96" (no host bits), got "100::/64"`,
		},
		{
			name: "tunnel_source_v6 family",
			doc:  "interface = \"eth0\"\ntunnel_source_v6 = \"172.16.0.0/16\"\n",
			want: `vipcast.toml:2:1: tunnel_source_v6: must be an IPv6 /96 such as "100::/96" (no host bits), got "172.16.0.0/16"`,
		},
		{
			name: "hc_source_v4 family",
			doc:  "interface = \"eth0\"\nhc_source_v4 = \"2001:db8::1\"\n",
			want: `vipcast.toml:2:1: hc_source_v4: must be a unicast IPv4 address, or "" for the interface's address, got "2001:db8::1"`,
		},
		{
			name: "hc_source_v6 unicast",
			doc:  "interface = \"eth0\"\nhc_source_v6 = \"ff02::1\"\n",
			want: `vipcast.toml:2:1: hc_source_v6: must be a unicast IPv6 address, or "" for the interface's address, got "ff02::1"`,
		},
		{
			name: "hc_mark_range reversed",
			doc:  "interface = \"eth0\"\nhc_mark_range = \"200-100\"\n",
			want: `vipcast.toml:2:1: hc_mark_range: must be "FIRST-LAST" with 1 <= FIRST <= LAST <= 4294967295, got "200-100"`,
		},
		{
			name: "hc_mark_range starts at 0",
			doc:  "interface = \"eth0\"\nhc_mark_range = \"0-100\"\n",
			want: `vipcast.toml:2:1: hc_mark_range: must be "FIRST-LAST" with 1 <= FIRST <= LAST <= 4294967295, got "0-100"`,
		},
		{
			name: "hc_mark_range too small for the reals",
			doc: `interface = "eth0"
hc_mark_range = "7-7"
[[vip]]
address = "203.0.113.1"
port = 80
real = [{ address = "198.51.100.1" }, { address = "198.51.100.2" }]
[[vip]]
address = "203.0.113.1"
port = 443
real = [{ address = "198.51.100.1" }]
`,
			want: `vipcast.toml:2:1: hc_mark_range: must hold one mark per distinct real address (2), got "7-7"`,
		},
		{
			name: "hc_mark_range size does not matter without hc_forwarding",
			doc:  "interface = \"eth0\"\nhc_forwarding = false\nhc_mark_range = \"7-7\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nreal = [{ address = \"198.51.100.1\" }, { address = \"198.51.100.2\" }]\n",
			want: "",
		},
		{
			name: "max_vips below the number of VIPs",
			doc:  "interface = \"eth0\"\nmax_vips = 1\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\n[[vip]]\naddress = \"203.0.113.1\"\nport = 443\n",
			want: "vipcast.toml:2:1: max_vips: must be at least the number of VIPs (2), got 1",
		},
		{
			name: "max_reals needs one more than the pairs",
			doc:  "interface = \"eth0\"\nmax_reals = 2\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nreal = [{ address = \"198.51.100.1\" }, { address = \"198.51.100.2\" }]\n",
			want: "vipcast.toml:2:1: max_reals: must be at least 3: one per (VIP, real) pair (2) plus one reserved, got 2",
		},
		{
			name: "max_reals exactly enough",
			doc:  "interface = \"eth0\"\nmax_reals = 3\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nreal = [{ address = \"198.51.100.1\" }, { address = \"198.51.100.2\" }]\n",
			want: "",
		},

		// [api] and [metrics].
		{
			name: "api socket absolute",
			doc:  "interface = \"eth0\"\n[api]\nsocket = \"vipcast.sock\"\n",
			want: `vipcast.toml:3:1: api.socket: must be an absolute path, got "vipcast.sock"`,
		},
		{
			name: "api socket_mode beyond 0777",
			doc:  "interface = \"eth0\"\n[api]\nsocket_mode = \"4755\"\n",
			want: `vipcast.toml:3:1: api.socket_mode: must be an octal permission string such as "0660" (at most "0777"), got "4755"`,
		},
		{
			name: "api socket_group",
			doc:  "interface = \"eth0\"\n[api]\nsocket_group = \"lb admins\"\n",
			want: `vipcast.toml:3:1: api.socket_group: must be a group name or number, got "lb admins"`,
		},
		{
			name: "metrics on a remote address",
			doc:  "interface = \"eth0\"\n[metrics]\nlisten = \"0.0.0.0:9641\"\n",
			want: `vipcast.toml:3:1: metrics.listen: must be a loopback address unless metrics.allow_remote = true, got "0.0.0.0:9641"`,
		},
		{
			name: "metrics on a remote address allowed",
			doc:  "interface = \"eth0\"\n[metrics]\nlisten = \"[::]:9641\"\nallow_remote = true\n",
			want: "",
		},
		{
			name: "metrics port 0",
			doc:  "interface = \"eth0\"\n[metrics]\nlisten = \"[::1]:0\"\n",
			want: `vipcast.toml:3:1: metrics.listen: must have a port other than 0, got "[::1]:0"`,
		},
		{
			name: "metrics off",
			doc:  "interface = \"eth0\"\n[metrics]\nlisten = \"\"\n",
			want: "",
		},

		// [health], and the same rules in [vip.health] and [vip.real.health].
		{
			name: "durations positive",
			doc:  "interface = \"eth0\"\n[health]\ninterval = \"0s\"\ntimeout = \"-1s\"\n",
			want: `vipcast.toml:3:1: health.interval: must be positive, got "0s"` + "\n" +
				`vipcast.toml:4:1: health.timeout: must be positive, got "-1s"`,
		},
		{
			name: "timeout at most interval",
			doc:  "interface = \"eth0\"\n[health]\ninterval = \"1s\"\ntimeout = \"1.5s\"\n",
			want: `vipcast.toml:4:1: health.timeout: must not exceed interval ("1s"), got "1.5s"`,
		},
		{
			name: "timeout checked against an inherited interval",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\n[vip.health]\ntimeout = \"2s\"\n",
			want: `vipcast.toml:6:1: vip[0].health.timeout: must not exceed interval ("1s"), got "2s"`,
		},
		{
			name: "rise and fall at least 1",
			doc:  "interface = \"eth0\"\n[health]\nrise = 0\nfall = 1001\n",
			want: "vipcast.toml:3:1: health.rise: must be 1..1000, got 0\nvipcast.toml:4:1: health.fall: must be 1..1000, got 1001",
		},
		{
			name: "jitter fraction",
			doc:  "interface = \"eth0\"\n[health]\njitter = 0.75\n",
			want: "vipcast.toml:3:1: health.jitter: must be 0..0.5 (a fraction of interval), got 0.75",
		},
		{
			name: "jitter nan",
			doc:  "interface = \"eth0\"\n[health]\njitter = nan\n",
			want: "vipcast.toml:3:1: health.jitter: must be 0..0.5 (a fraction of interval), got NaN",
		},
		{
			name: "http path and method",
			doc:  "interface = \"eth0\"\n[health]\ntype = \"https\"\npath = \"healthz\"\nmethod = \"GET /\"\n",
			want: `vipcast.toml:4:1: health.path: must start with "/", got "healthz"` + "\n" +
				`vipcast.toml:5:1: health.method: must be an HTTP method such as "GET", got "GET /"`,
		},
		{
			name: "expect_status range",
			doc:  "interface = \"eth0\"\n[health]\nexpect_status = [200, 600]\n",
			want: "vipcast.toml:3:23: health.expect_status[1]: must be 100..599, got 600",
		},
		{
			name: "exec needs a command",
			doc:  "interface = \"eth0\"\n[health]\ntype = \"exec\"\n",
			want: `vipcast.toml:2:1: health.command: required for an "exec" check`,
		},
		{
			name: "exec command absolute",
			doc:  "interface = \"eth0\"\n[health]\ntype = \"exec\"\ncommand = [\"check.sh\", \"-q\"]\n",
			want: `vipcast.toml:4:12: health.command[0]: must be an absolute path, got "check.sh"`,
		},
		{
			name: "port-0 VIP needs a check port",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 0\n",
			want: `vipcast.toml:2:1: vip[0].health.port: required for a "tcp" check of a VIP that serves every port (port = 0)`,
		},
		{
			name: "port-0 VIP with an icmp check",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 0\nhealth = { type = \"icmp\" }\n",
			want: "",
		},
		{
			name: "port-0 VIP: a real that switches to tcp needs a port",
			doc: `interface = "eth0"
[[vip]]
address = "203.0.113.1"
port = 0
health = { type = "icmp" }
  [[vip.real]]
  address = "198.51.100.1"
  health = { type = "tcp" }
`,
			want: `vipcast.toml:8:3: vip[0].real[0].health.port: required for a "tcp" check of a VIP that serves every port (port = 0)`,
		},
		{
			name: "problem in [health] reported once, not per VIP",
			doc:  "interface = \"eth0\"\n[health]\nrise = 0\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\n[[vip]]\naddress = \"203.0.113.2\"\nport = 80\n",
			want: "vipcast.toml:3:1: health.rise: must be 1..1000, got 0",
		},
		{
			name: "health check port range",
			doc:  "interface = \"eth0\"\n[health]\nport = 65536\n",
			want: "vipcast.toml:3:1: health.port: must be 0..65535, got 65536",
		},

		// VIPs and reals.
		{
			name: "vip address required",
			doc:  "interface = \"eth0\"\n[[vip]]\nport = 80\n",
			want: "vipcast.toml:2:1: vip[0].address: required",
		},
		{
			name: "vip address unicast",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"224.0.0.5\"\nport = 80\n",
			want: `vipcast.toml:3:1: vip[0].address: must be a unicast address, got "224.0.0.5"`,
		},
		{
			name: "vip address loopback",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"::1\"\nport = 80\n",
			want: `vipcast.toml:3:1: vip[0].address: must not be a loopback address, got "::1"`,
		},
		{
			name: "vip address IPv4-mapped",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"::ffff:203.0.113.1\"\nport = 80\n",
			want: `vipcast.toml:3:1: vip[0].address: must be written as plain IPv4, not IPv4-mapped IPv6, got "::ffff:203.0.113.1"`,
		},
		{
			name: "vip port range",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 65536\n",
			want: "vipcast.toml:4:1: vip[0].port: must be 0..65535, got 65536",
		},
		{
			name: "duplicate vip names the earlier one",
			doc: `interface = "eth0"
[[vip]]
address = "203.0.113.1"
port = 80
[[vip]]
address = "203.0.113.1"
port = 80
protocol = "udp"
[[vip]]
address = "203.0.113.1"
port = 80
protocol = "tcp"
`,
			want: `vipcast.toml:9:1: vip[2]: duplicate of vip[0], got "203.0.113.1:80/tcp"`,
		},
		{
			name: "flags exclusive",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 0\nflags = [\"dport_only\", \"no_src_port\"]\nhealth = { port = 80 }\n",
			want: `vipcast.toml:5:1: vip[0].flags: dport_only and no_src_port exclude each other, got ["no_src_port", "dport_only"]`,
		},
		{
			name: "ring_size prime",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nring_size = 65536\n",
			want: "vipcast.toml:5:1: vip[0].ring_size: must be a prime number in 3..16777216, got 65536",
		},
		{
			name: "ring_size bound",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nring_size = 16777259\n",
			want: "vipcast.toml:5:1: vip[0].ring_size: must be a prime number in 3..16777216, got 16777259",
		},
		{
			name: "ring_size large prime",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nring_size = 16777213\n",
			want: "",
		},
		{
			name: "ring_size at least the weighted reals",
			doc: `interface = "eth0"
[[vip]]
address = "203.0.113.1"
port = 80
ring_size = 3
real = [{ address = "198.51.100.1" }, { address = "198.51.100.2" }, { address = "198.51.100.3" },
        { address = "198.51.100.4" }, { address = "198.51.100.5", weight = 0 }]
`,
			want: "vipcast.toml:5:1: vip[0].ring_size: must be at least the number of weighted reals (4), got 3",
		},
		{
			name: "IPv6 VIP with an IPv4 real names both",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"2001:db8::1\"\nport = 443\n  [[vip.real]]\n  address = \"198.51.100.1\"\n",
			want: `vipcast.toml:6:3: vip[0].real[0].address: an IPv6 VIP ("2001:db8::1") needs IPv6 reals (IPv6 cannot be carried in IPv4), got "198.51.100.1"`,
		},
		{
			name: "IPv4 VIP with an IPv6 real is fine",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 443\n  [[vip.real]]\n  address = \"2001:db8::11\"\n",
			want: "",
		},
		{
			name: "duplicate real names the earlier one",
			doc: `interface = "eth0"
[[vip]]
address = "203.0.113.1"
port = 80
  [[vip.real]]
  address = "198.51.100.1"
  [[vip.real]]
  address = "198.51.100.2"
  [[vip.real]]
  address = "198.51.100.1"
  weight = 5
`,
			want: `vipcast.toml:10:3: vip[0].real[2].address: duplicate of vip[0].real[0], got "198.51.100.1"`,
		},
		{
			name: "real address required",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\n  [[vip.real]]\n  weight = 2\n",
			want: "vipcast.toml:5:3: vip[0].real[0].address: required",
		},
		{
			name: "real is the VIP itself",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nreal = [{ address = \"203.0.113.1\" }]\n",
			want: `vipcast.toml:5:11: vip[0].real[0].address: must not be the VIP's own address, got "203.0.113.1"`,
		},
		{
			name: "real link-local",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"2001:db8::1\"\nport = 80\nreal = [{ address = \"fe80::1\" }]\n",
			want: `vipcast.toml:5:11: vip[0].real[0].address: must not be a link-local address, got "fe80::1"`,
		},
		{
			name: "weight range",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nreal = [{ address = \"198.51.100.1\", weight = 65536 }]\n",
			want: "vipcast.toml:5:37: vip[0].real[0].weight: must be 0..65535, got 65536",
		},
		{
			name: "real state",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nreal = [{ address = \"198.51.100.1\", state = \"down\" }]\n",
			want: `vipcast.toml:5:37: vip[0].real[0].state: must be "up", "drain" or "disabled", got "down"`,
		},

		// BGP.
		{
			name: "asn range",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 4294967296\nrouter_id = \"192.0.2.1\"\n",
			want: "vipcast.toml:3:1: bgp.asn: must be 1..4294967295, got 4294967296",
		},
		{
			name: "asn 0",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 0\n",
			want: "vipcast.toml:3:1: bgp.asn: must be 1..4294967295, got 0",
		},
		{
			name: "router_id required with asn",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\n",
			want: "vipcast.toml:2:1: bgp.router_id: required when bgp.asn is set",
		},
		{
			name: "router_id IPv4",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"2001:db8::1\"\n",
			want: `vipcast.toml:4:1: bgp.router_id: must be a non-zero IPv4 address, got "2001:db8::1"`,
		},
		{
			name: "router_id non-zero",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"0.0.0.0\"\n",
			want: `vipcast.toml:4:1: bgp.router_id: must be a non-zero IPv4 address, got "0.0.0.0"`,
		},
		{
			name: "api_listen remote",
			doc:  "interface = \"eth0\"\n[bgp]\napi_listen = \"192.0.2.1:50051\"\n",
			want: `vipcast.toml:3:1: bgp.api_listen: must be a loopback address or a unix socket unless bgp.allow_remote_api = true, got "192.0.2.1:50051"`,
		},
		{
			name: "api_listen remote allowed",
			doc:  "interface = \"eth0\"\n[bgp]\napi_listen = \"192.0.2.1:50051\"\nallow_remote_api = true\n",
			want: "",
		},
		{
			name: "api_listen unix and off",
			doc:  "interface = \"eth0\"\n[bgp]\napi_listen = \"unix:/run/gobgp.sock\"\n",
			want: "",
		},
		{
			name: "restart_time",
			doc:  "interface = \"eth0\"\n[bgp]\nrestart_time = \"2h\"\n",
			want: `vipcast.toml:3:1: bgp.restart_time: must be whole seconds in "1s".."4095s" (RFC 4724), got "2h0m0s"`,
		},
		{
			name: "startup_grace positive, delays not negative",
			doc:  "interface = \"eth0\"\n[bgp]\nstartup_grace = \"0s\"\nreannounce_delay = \"-1s\"\ndrain_time = \"-5s\"\n",
			want: `vipcast.toml:3:1: bgp.startup_grace: must be positive, got "0s"` + "\n" +
				`vipcast.toml:4:1: bgp.reannounce_delay: must not be negative, got "-1s"` + "\n" +
				`vipcast.toml:5:1: bgp.drain_time: must not be negative, got "-5s"`,
		},
		{
			name: "announce_policy",
			doc:  "interface = \"eth0\"\n[bgp]\nannounce_policy = \"any\"\n",
			want: `vipcast.toml:3:1: bgp.announce_policy: must be "all_services" or "any_service", got "any"`,
		},
		{
			name: "min_healthy at least 1",
			doc:  "interface = \"eth0\"\n[bgp]\nmin_healthy = 0\n",
			want: "vipcast.toml:3:1: bgp.min_healthy: must be 1..2147483647, got 0",
		},
		{
			name: "min_healthy above the VIP's reals",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nbgp = { min_healthy = 3 }\nreal = [{ address = \"198.51.100.1\" }, { address = \"198.51.100.2\" }]\n",
			want: "vipcast.toml:5:9: vip[0].bgp.min_healthy: must not exceed the VIP's number of reals (2), or it is never announced, got 3",
		},
		{
			name: "deprioritize needs attributes",
			doc:  "interface = \"eth0\"\n[bgp]\nwhen_unhealthy = \"deprioritize\"\n",
			want: `vipcast.toml:2:1: bgp.deprioritize: must set med, communities or as_path_prepend when when_unhealthy = "deprioritize"`,
		},
		{
			name: "deprioritize needed by one VIP",
			doc:  "interface = \"eth0\"\n[bgp.deprioritize]\ncommunities = []\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nbgp = { when_unhealthy = \"deprioritize\" }\n",
			want: `vipcast.toml:2:1: bgp.deprioritize: must set med, communities or as_path_prepend when when_unhealthy = "deprioritize"`,
		},
		{
			name: "as_path_prepend range",
			doc:  "interface = \"eth0\"\n[bgp.deprioritize]\nas_path_prepend = 17\n",
			want: "vipcast.toml:3:1: bgp.deprioritize.as_path_prepend: must be 0..16, got 17",
		},
		{
			name: "services on one address must agree on the route",
			doc: `interface = "eth0"
[[vip]]
address = "203.0.113.1"
port = 80
bgp = { communities = ["65000:1"] }
[[vip]]
address = "203.0.113.2"
port = 80
[[vip]]
address = "203.0.113.1"
port = 443
[vip.bgp]
min_healthy = 1
communities = ["65000:2"]
`,
			want: `vipcast.toml:14:1: vip[2].bgp.communities: must match vip[0], which has the same address (one route is announced per address), got ["65000:2"]`,
		},
		{
			name: "services on one address may differ in min_healthy",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\n[[vip]]\naddress = \"203.0.113.1\"\nport = 443\nbgp = { min_healthy = 1, med = 5 }\n",
			want: `vipcast.toml:8:26: vip[1].bgp.med: must match vip[0], which has the same address (one route is announced per address), got 5`,
		},
		{
			name: "peers need bgp.asn",
			doc:  "interface = \"eth0\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\n",
			want: "vipcast.toml:2:1: bgp.asn: required when peers are configured",
		},
		{
			name: "peer address and asn",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.300\"\nasn = -1\n",
			want: `vipcast.toml:6:1: bgp.peer[0].address: must be an IP address, got "192.0.2.300"` + "\n" +
				"vipcast.toml:7:1: bgp.peer[0].asn: must be 1..4294967295, got -1",
		},
		{
			name: "duplicate peer",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65002\n",
			want: `vipcast.toml:9:1: bgp.peer[1].address: duplicate of bgp.peer[0], got "192.0.2.254"`,
		},
		{
			name: "hold_time 0 or at least 3s",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\nhold_time = \"2s\"\n",
			want: `vipcast.toml:8:1: bgp.peer[0].hold_time: must be "0s" or whole seconds in "3s".."65535s" (RFC 4271), got "2s"`,
		},
		{
			name: "hold_time 0 without keepalives",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\nhold_time = \"0s\"\n",
			want: "",
		},
		{
			name: "keepalive below hold_time",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\nhold_time = \"9s\"\nkeepalive = \"9s\"\n",
			want: `vipcast.toml:9:1: bgp.peer[0].keepalive: must be whole seconds, at least "1s" and less than hold_time ("9s"), got "9s"`,
		},
		{
			name: "keepalive with hold_time 0",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\nhold_time = \"0s\"\nkeepalive = \"10s\"\n",
			want: `vipcast.toml:9:1: bgp.peer[0].keepalive: must be "0s" when hold_time is "0s", got "10s"`,
		},
		{
			name: "peer port, ttl, password",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\nport = 0\nmultihop_ttl = 256\npassword = \"" + strings.Repeat("k", 81) + "\"\n",
			want: "vipcast.toml:8:1: bgp.peer[0].port: must be 1..65535, got 0\n" +
				"vipcast.toml:9:1: bgp.peer[0].multihop_ttl: must be 0..255, got 256\n" +
				"vipcast.toml:10:1: bgp.peer[0].password: must be at most 80 bytes (TCP MD5 key limit)",
		},
		{
			name: "peer families empty",
			doc:  "interface = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.peer]]\naddress = \"192.0.2.254\"\nasn = 65000\nfamilies = []\n",
			want: `vipcast.toml:8:1: bgp.peer[0].families: must list "ipv4", "ipv6" or both`,
		},
	})
}

// Values a rule accepts land in the Config as parsed values.
func TestAcceptedValues(t *testing.T) {
	c := mustParse(t, "x.toml", []byte(`interface = "eth0"
gateway_mac = "52:54:00:AB:CD:EF"
tunnel_source_v4 = "10.1.0.0/16"
hc_source_v4 = ""
[health]
jitter = 0
[bgp]
asn = 65001
router_id = "192.0.2.1"
api_listen = ""
communities = ["blackhole", "0:0", "65535:65535"]
[[bgp.peer]]
address = "192.0.2.254"
asn = 65000
hold_time = "30s"
[[vip]]
address = "203.0.113.1"
port = 80
`))
	if got := c.GatewayMAC.String(); got != "52:54:00:ab:cd:ef" {
		t.Errorf("gateway_mac = %s", got)
	}
	if c.TunnelSourceV4 != netip.MustParsePrefix("10.1.0.0/16") || c.HCSourceV4.IsValid() {
		t.Errorf("tunnel_source_v4 = %s, hc_source_v4 = %s", c.TunnelSourceV4, c.HCSourceV4)
	}
	if c.Health.Jitter != 0 {
		t.Errorf("jitter = %v", c.Health.Jitter)
	}
	if !c.BGP.APIListen.IsZero() || c.BGP.APIListen.Network() != "" {
		t.Errorf("api_listen \"\" = %+v, want off", c.BGP.APIListen)
	}
	want := []Community{0xFFFF029A, 0, 0xFFFFFFFF}
	if len(c.BGP.Route.Communities) != 3 || c.BGP.Route.Communities[0] != want[0] ||
		c.BGP.Route.Communities[1] != want[1] || c.BGP.Route.Communities[2] != want[2] {
		t.Errorf("communities = %v", c.BGP.Route.Communities)
	}
	if p := c.BGP.Peers[0]; p.Keepalive != 10*time.Second || len(p.Families) != 1 || p.Families[0] != FamilyIPv4 || p.Port != 179 {
		t.Errorf("peer defaults = %+v", p)
	}
	v := c.VIPs[0]
	if v.Protocol != TCP || v.RingSize != DefaultRingSize || len(v.Reals) != 0 || !v.BGP.Announce || v.BGP.MinHealthy != 1 {
		t.Errorf("vip defaults = %+v", v)
	}
	if c.VIPs[0].BGP.Communities[0] != want[0] {
		t.Errorf("vip does not inherit bgp communities: %v", c.VIPs[0].BGP.Communities)
	}
}
