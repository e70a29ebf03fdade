package config

import (
	"errors"
	"strings"
	"testing"
)

type errCase struct {
	name string
	doc  string
	want string // the whole error text; "" means no error
}

func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("vipcast.toml", []byte(tc.doc))
			got := ""
			if err != nil {
				got = err.Error()
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Errorf("error is %T, want *ValidationError", err)
				}
			}
			if got != tc.want {
				t.Errorf("document:\n%s\ngot:\n%s\nwant:\n%s", tc.doc, got, tc.want)
			}
		})
	}
}

// Syntax errors, unknown keys and values of the wrong TOML type.
func TestDecodeErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{
			name: "syntax error",
			doc:  "interface = \"eth0\"\nlru_size = \n",
			want: "vipcast.toml:2:12: invalid TOML: expected value but found '\\n' instead",
		},
		{
			name: "key defined twice",
			doc:  "interface = \"eth0\"\ninterface = \"eth1\"\n",
			want: "vipcast.toml:2:1: invalid TOML: Key 'interface' has already been defined.",
		},
		{
			name: "unknown key with a suggestion",
			doc:  "interface = \"eth0\"\nlru_sise = 10\n",
			want: `vipcast.toml:2:1: lru_sise: unknown key (did you mean "lru_size"?)`,
		},
		{
			name: "unknown key without a suggestion",
			doc:  "interface = \"eth0\"\ncolour = \"blue\"\n",
			want: "vipcast.toml:2:1: colour: unknown key",
		},
		{
			name: "unknown table",
			doc:  "interface = \"eth0\"\n\n[logging]\nlevel = \"debug\"\n",
			want: "vipcast.toml:3:1: logging: unknown key",
		},
		{
			name: "unknown keys in nested tables, each at its own element",
			doc: `interface = "eth0"
[[vip]]
address = "203.0.113.1"
port = 80
  [[vip.real]]
  address = "198.51.100.1"
  [[vip.real]]
  address = "198.51.100.2"
  wieght = 3
  [vip.real.health]
  intervall = "2s"
[[bgp.peer]]
adress = "192.0.2.1"
`,
			want: `vipcast.toml:9:3: vip[0].real[1].wieght: unknown key (did you mean "weight"?)
vipcast.toml:11:3: vip[0].real[1].health.intervall: unknown key (did you mean "interval"?)
vipcast.toml:12:1: bgp.asn: required when peers are configured
vipcast.toml:12:1: bgp.peer[0].address: required
vipcast.toml:12:1: bgp.peer[0].asn: required
vipcast.toml:13:1: bgp.peer[0].adress: unknown key (did you mean "address"?)`,
		},
		{
			name: "quoted unknown key",
			doc:  "interface = \"eth0\"\n\"lru size\" = 1\n",
			want: `vipcast.toml:2:1: "lru size": unknown key (did you mean "lru_size"?)`,
		},
		{
			name: "string where an integer belongs",
			doc:  "interface = \"eth0\"\nmax_vips = \"512\"\n",
			want: `vipcast.toml:2:1: max_vips: must be an integer, got "512"`,
		},
		{
			name: "integer where a string belongs",
			doc:  "interface = 1\n",
			want: "vipcast.toml:1:1: interface: must be a string, got 1",
		},
		{
			name: "float where an integer belongs",
			doc:  "interface = \"eth0\"\n[health]\nrise = 2.5\n",
			want: "vipcast.toml:3:1: health.rise: must be an integer, got 2.5",
		},
		{
			name: "string where a boolean belongs",
			doc:  "interface = \"eth0\"\nicmp_too_big = \"yes\"\n",
			want: `vipcast.toml:2:1: icmp_too_big: must be true or false, got "yes"`,
		},
		{
			name: "datetime where a duration belongs",
			doc:  "interface = \"eth0\"\n[health]\ninterval = 1979-05-27T07:32:00Z\n",
			want: "vipcast.toml:3:1: health.interval: must be a string, got 1979-05-27T07:32:00Z",
		},
		{
			name: "integer where a duration belongs",
			doc:  "interface = \"eth0\"\n[health]\ntimeout = 1\n",
			want: "vipcast.toml:3:1: health.timeout: must be a string, got 1",
		},
		{
			name: "integer where an optional address belongs",
			doc:  "interface = \"eth0\"\nhc_source_v6 = 6\n",
			want: "vipcast.toml:2:1: hc_source_v6: must be a string, got 6",
		},
		{
			name: "scalar where a list belongs",
			doc:  "interface = \"eth0\"\nforwarding_cores = 3\n",
			want: "vipcast.toml:2:1: forwarding_cores: must be an array, got 3",
		},
		{
			name: "wrong element type, at the element",
			doc:  "interface = \"eth0\"\nforwarding_cores = [0, 1,\n  \"2\"]\n",
			want: `vipcast.toml:3:3: forwarding_cores[2]: must be an integer, got "2"`,
		},
		{
			name: "value where a table belongs",
			doc:  "interface = \"eth0\"\napi = \"/run/x.sock\"\n",
			want: `vipcast.toml:2:1: api: must be a table, got "/run/x.sock"`,
		},
		{
			name: "value where an array of tables belongs",
			doc:  "interface = \"eth0\"\nvip = \"203.0.113.1\"\n",
			want: `vipcast.toml:2:1: vip: must be an array of tables ([[vip]]), got "203.0.113.1"`,
		},
		{
			name: "inline array element that is not a table",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\nreal = [{ address = \"198.51.100.1\" }, \"198.51.100.2\"]\n",
			want: `vipcast.toml:5:39: vip[0].real[1]: must be a table, got "198.51.100.2"`,
		},
		{
			name: "malformed values",
			doc: `interface = "eth0"
tunnel_source_v4 = "172.16.0.0"
gateway_mac = "52:54:00:12:35"
hc_source_v4 = "192.0.2"
hc_mark_range = "100..200"
mode = "Shared"
[api]
socket_mode = "rw-rw----"
[metrics]
listen = "localhost:9641"
[health]
interval = "1 second"
type = "grpc"
[bgp]
api_listen = "unix:run/gobgp.sock"
communities = ["65000:100", "65000:70000", "no-export", "nope"]
large_communities = ["1:2"]
[[bgp.peer]]
address = "192.0.2.1"
asn = 65000
families = ["ipv4", "ipv4", "l2vpn"]
[[vip]]
address = "203.0.113.1"
port = 80
protocol = "sctp"
flags = ["lru_bypass", "lru_bypass", "fast"]
`,
			want: `vipcast.toml:2:1: tunnel_source_v4: must be an IP prefix such as "172.16.0.0/16", got "172.16.0.0"
vipcast.toml:3:1: gateway_mac: must be "auto" or a unicast Ethernet address such as "52:54:00:12:35:02", got "52:54:00:12:35"
vipcast.toml:4:1: hc_source_v4: must be an IP address, got "192.0.2"
vipcast.toml:5:1: hc_mark_range: must be "FIRST-LAST" with 1 <= FIRST <= LAST <= 4294967295, got "100..200"
vipcast.toml:6:1: mode: must be "standalone" or "shared", got "Shared"
vipcast.toml:8:1: api.socket_mode: must be an octal permission string such as "0660" (at most "0777"), got "rw-rw----"
vipcast.toml:10:1: metrics.listen: must be "IP:PORT" (IPv6 in brackets), or "" for no metrics endpoint, got "localhost:9641"
vipcast.toml:12:1: health.interval: must be a duration such as "1s" or "500ms", got "1 second"
vipcast.toml:13:1: health.type: must be "tcp", "http", "https", "udp", "icmp", "exec" or "none", got "grpc"
vipcast.toml:14:1: bgp.asn: required when peers are configured
vipcast.toml:15:1: bgp.api_listen: must be "unix:///absolute/path", got "unix:run/gobgp.sock"
vipcast.toml:16:29: bgp.communities[1]: must be "ASN:VALUE" with each part 0..65535, got "65000:70000"
vipcast.toml:16:57: bgp.communities[3]: must be "ASN:VALUE" (each 0..65535) or a well-known name such as "no-export", got "nope"
vipcast.toml:17:22: bgp.large_communities[0]: must be "GLOBAL:LOCAL1:LOCAL2" with each part 0..4294967295, got "1:2"
vipcast.toml:21:21: bgp.peer[0].families[1]: listed twice, got "ipv4"
vipcast.toml:21:29: bgp.peer[0].families[2]: must be "ipv4" or "ipv6", got "l2vpn"
vipcast.toml:25:1: vip[0].protocol: must be "tcp" or "udp", got "sctp"
vipcast.toml:26:24: vip[0].flags[1]: listed twice, got "lru_bypass"
vipcast.toml:26:38: vip[0].flags[2]: must be "no_src_port", "lru_bypass" or "dport_only", got "fast"`,
		},
		{
			// The bad port keeps its default (0), which would also make the
			// VIP "serve every port" and need a check port; that follow-on
			// problem is not reported.
			name: "no follow-on errors from a value that failed to decode",
			doc:  "interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = \"http\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 0\n[health]\nport = 80\n",
			want: `vipcast.toml:4:1: vip[0].port: must be an integer, got "http"`,
		},
		{
			name: "missing required keys point at their table",
			doc:  "interface = \"eth0\"\n\n[[vip]]\nprotocol = \"udp\"\n",
			want: "vipcast.toml:3:1: vip[0].address: required\nvipcast.toml:3:1: vip[0].port: required",
		},
		{
			name: "errors are sorted by position, across decoding and validation",
			doc:  "interface = \"eth0\"\ntunnel_mtu = 100\nmax_vips = \"x\"\nlru_size = -5\nbogus = true\n",
			want: `vipcast.toml:2:1: tunnel_mtu: must be 1280..9216, got 100
vipcast.toml:3:1: max_vips: must be an integer, got "x"
vipcast.toml:4:1: lru_size: must be 1..268435456, got -5
vipcast.toml:5:1: bogus: unknown key`,
		},
		{
			name: "CRLF line endings",
			doc:  "interface = \"eth0\"\r\n[api]\r\n  socket = 5\r\n",
			want: "vipcast.toml:3:3: api.socket: must be a string, got 5",
		},
	})
}

func TestFieldErrorFields(t *testing.T) {
	_, err := Parse("x.toml", []byte("interface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.1\"\nport = 80\n  [[vip.real]]\n  address = \"198.51.100.1\"\n  weight = -1\n"))
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("no FieldError in %v", err)
	}
	want := FieldError{File: "x.toml", Line: 7, Column: 3, Field: "vip[0].real[0].weight", Message: "must be 0..65535", Value: "-1"}
	if fe.File != want.File || fe.Line != want.Line || fe.Column != want.Column || fe.Field != want.Field ||
		fe.Message != want.Message || fe.Value != want.Value {
		t.Errorf("got %+v, want %+v", *fe, want)
	}
	if got := fe.Error(); got != "x.toml:7:3: vip[0].real[0].weight: must be 0..65535, got -1" {
		t.Errorf("Error() = %q", got)
	}
}

func TestLongValuesAreShortened(t *testing.T) {
	long := strings.Repeat("a", 500)
	_, err := Parse("x.toml", []byte("interface = \"eth0\"\nmode = \""+long+"\"\n"))
	want := `x.toml:2:1: mode: must be "standalone" or "shared", got "` + strings.Repeat("a", maxShownString) + `..."`
	if err == nil || err.Error() != want {
		t.Errorf("got %v", err)
	}
}
