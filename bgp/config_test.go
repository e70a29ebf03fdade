package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		ASN:      65000,
		RouterID: netip.MustParseAddr("192.0.2.2"),
		Peers: []Peer{
			{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001},
			{Address: netip.MustParseAddr("2001:db8:0:1::1"), ASN: 65001},
		},
		Communities: []string{"65000:100", "no-export"},
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" = valid; otherwise a substring of the error
	}{
		{"valid", func(*Config) {}, ""},
		{"asn zero", func(c *Config) { c.ASN = 0 }, "bgp: asn 0 is not usable"},
		{"asn as_trans", func(c *Config) { c.ASN = 23456 }, "asn 23456"},
		{"four-byte asn ok", func(c *Config) { c.ASN = 4200000000 }, ""},
		{"router id missing", func(c *Config) { c.RouterID = netip.Addr{} }, "router_id is missing"},
		{"router id v6", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, "router_id 2001:db8::1 must be a non-zero unicast IPv4"},
		{"router id zero", func(c *Config) { c.RouterID = netip.MustParseAddr("0.0.0.0") }, "router_id 0.0.0.0"},
		{"listen port -1", func(c *Config) { c.ListenPort = -1 }, ""},
		{"listen port 179", func(c *Config) { c.ListenPort = 179 }, ""},
		{"listen port -2", func(c *Config) { c.ListenPort = -2 }, "listen_port -2 out of range"},
		{"listen port 70000", func(c *Config) { c.ListenPort = 70000 }, "listen_port 70000"},
		{"api v6 loopback", func(c *Config) { c.APIListen = "[::1]:50051" }, ""},
		{"api localhost", func(c *Config) { c.APIListen = "localhost:50051" }, ""},
		{"api unix", func(c *Config) { c.APIListen = "unix:///run/vipcast/gobgp.sock" }, ""},
		{"api off", func(c *Config) { c.APIListen = APIOff }, ""},
		{"api relative unix", func(c *Config) { c.APIListen = "unix://gobgp.sock" }, `api_listen "unix://gobgp.sock": unix socket path must be absolute`},
		{"api remote refused", func(c *Config) { c.APIListen = "0.0.0.0:50051" }, `api_listen "0.0.0.0:50051" is not loopback`},
		{"api remote allowed", func(c *Config) { c.APIListen = "0.0.0.0:50051"; c.AllowRemoteAPI = true }, ""},
		{"api hostname refused", func(c *Config) { c.APIListen = "example.net:50051" }, "host must be a loopback IP address"},
		{"api no port", func(c *Config) { c.APIListen = "127.0.0.1" }, `api_listen "127.0.0.1": want host:port`},
		{"api bad port", func(c *Config) { c.APIListen = "127.0.0.1:http" }, `bad port "http"`},
		{"api v6 no brackets", func(c *Config) { c.APIListen = "::1:50051" }, "need brackets"},
		{"api two addresses", func(c *Config) { c.APIListen = "127.0.0.1:1,127.0.0.1:2" }, "one address only"},
		{"restart time too long", func(c *Config) { c.GracefulRestart = true; c.RestartTime = time.Hour + 10*time.Minute }, "restart_time 1h10m0s out of range"},
		{"restarting without gr", func(c *Config) { c.Restarting = true }, "restarting needs graceful_restart"},
		{"bad community", func(c *Config) { c.Communities = []string{"65000:70000"} }, `communities: community "65000:70000"`},
		{"bad community word", func(c *Config) { c.Communities = []string{"gold"} }, `community "gold"`},
		{"large community ok", func(c *Config) { c.LargeCommunities = []string{"4200000000:1:2"} }, ""},
		{"bad large community", func(c *Config) { c.LargeCommunities = []string{"1:2"} }, `large_communities: large community "1:2"`},
		{"next hop v4 is v6", func(c *Config) { c.NextHopV4 = netip.MustParseAddr("2001:db8::2") }, "next_hop_v4 2001:db8::2 must be a unicast IPv4"},
		{"next hop v6 mapped", func(c *Config) { c.NextHopV6 = netip.MustParseAddr("::ffff:192.0.2.2") }, "next_hop_v6 ::ffff:192.0.2.2"},
		{"peer address missing", func(c *Config) { c.Peers[0].Address = netip.Addr{} }, "bgp: peers[0] address is missing"},
		{"peer mapped", func(c *Config) { c.Peers[0].Address = netip.MustParseAddr("::ffff:192.0.2.1") }, "peers[0] ::ffff:192.0.2.1: address is IPv4-mapped; write it as 192.0.2.1"},
		{"peer multicast", func(c *Config) { c.Peers[0].Address = netip.MustParseAddr("224.0.0.5") }, "peers[0] 224.0.0.5: address must be unicast"},
		{"peer asn zero", func(c *Config) { c.Peers[1].ASN = 0 }, "peers[1] 2001:db8:0:1::1: asn 0 is not usable"},
		{"duplicate peer", func(c *Config) { c.Peers = append(c.Peers, Peer{Address: c.Peers[0].Address, ASN: 65002}) }, "peers[2] 192.0.2.1: duplicate of peers[0]"},
		{"hold time too short", func(c *Config) { c.Peers[0].HoldTime = 2 * time.Second }, "hold_time 2s must be 0"},
		{"hold time fractional", func(c *Config) { c.Peers[0].HoldTime = 9500 * time.Millisecond }, "timers must be whole seconds"},
		{"keepalive above hold", func(c *Config) { c.Peers[0].HoldTime = 9 * time.Second; c.Peers[0].Keepalive = 9 * time.Second }, "keepalive 9s must be below hold_time 9s"},
		{"keepalive ok", func(c *Config) { c.Peers[0].HoldTime = 9 * time.Second; c.Peers[0].Keepalive = 3 * time.Second }, ""},
		{"multihop ibgp", func(c *Config) { c.Peers[0].ASN = 65000; c.Peers[0].MultihopTTL = 2 }, "multihop_ttl applies to eBGP only"},
		{"multihop ebgp ok", func(c *Config) { c.Peers[0].MultihopTTL = 2 }, ""},
		{"password too long", func(c *Config) { c.Peers[0].Password = strings.Repeat("x", 81) }, "password longer than 80 bytes"},
		{"unknown family", func(c *Config) { c.Peers[0].Families = []string{"ipv4", "vpnv4"} }, `peers[0] 192.0.2.1: family "vpnv4" unknown`},
		{"family twice", func(c *Config) { c.Peers[0].Families = []string{"ipv4", "ipv4"} }, `family "ipv4" listed twice`},
		{"v6 over v4 session needs next hop", func(c *Config) { c.Peers[0].Families = []string{"ipv4", "ipv6"} }, "family ipv6 over an IPv4 session needs next_hop_v6"},
		{"v6 over v4 session with next hop", func(c *Config) {
			c.Peers[0].Families = []string{"ipv4", "ipv6"}
			c.NextHopV6 = netip.MustParseAddr("2001:db8:0:1::2")
		}, ""},
		{"v4 over v6 session needs next hop", func(c *Config) { c.Peers[1].Families = []string{"ipv4"} }, "family ipv4 over an IPv6 session needs next_hop_v4"},
		{"several errors joined", func(c *Config) { c.ASN = 0; c.Peers[1].ASN = 0 }, "asn 0 is not usable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := New(c, nil); err != nil {
					t.Fatalf("New() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, err := New(c, nil); err == nil {
				t.Fatalf("New() accepted a config Validate refused")
			}
		})
	}
}

func TestConfigValidateReportsAll(t *testing.T) {
	c := validConfig()
	c.ASN = 0
	c.Peers[1].ASN = 0
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "bgp: asn 0") || !strings.Contains(err.Error(), "peers[1] 2001:db8:0:1::1: asn 0") {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	c.Peers[0].Families = nil
	d := c.withDefaults()
	if d.APIListen != DefaultAPIListen || d.ListenPort != -1 || d.RestartTime != DefaultRestartTime {
		t.Fatalf("defaults: api %q listen %d restart %s", d.APIListen, d.ListenPort, d.RestartTime)
	}
	if got := d.Peers[0].Families; len(got) != 1 || got[0] != FamilyIPv4 {
		t.Fatalf("v4 peer default families %v", got)
	}
	if got := d.Peers[1].Families; len(got) != 1 || got[0] != FamilyIPv6 {
		t.Fatalf("v6 peer default families %v", got)
	}
	if d.Peers[0].Port != 179 || d.Peers[0].ConnectRetry != DefaultConnectRetry {
		t.Fatalf("peer defaults: port %d retry %s", d.Peers[0].Port, d.Peers[0].ConnectRetry)
	}
	if c.Peers[0].Families != nil || c.ListenPort != 0 {
		t.Fatal("withDefaults changed its receiver's peers")
	}
}

func TestAnnounceRejectsBadInput(t *testing.T) {
	s, err := New(validConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		prefix string
		attrs  Attrs
		want   string
	}{
		{"203.0.113.0/24", Attrs{}, "not a host route"},
		{"::ffff:203.0.113.1/128", Attrs{}, "IPv4-mapped"},
		{"0.0.0.0/32", Attrs{}, "not a unicast VIP"},
		{"203.0.113.1/32", Attrs{Communities: []string{"1:2:3"}}, `announce 203.0.113.1/32: community "1:2:3"`},
		{"203.0.113.1/32", Attrs{Prepend: 40}, "prepend 40"},
	}
	for _, tc := range tests {
		err := s.Announce(netip.MustParsePrefix(tc.prefix), tc.attrs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Announce(%s, %+v) = %v, want error containing %q", tc.prefix, tc.attrs, err, tc.want)
		}
	}
	if got := s.Announced(); len(got) != 0 {
		t.Fatalf("rejected announcements were kept: %+v", got)
	}
}
