package lb

import (
	"net/netip"
	"testing"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
)

func TestDecap(t *testing.T) {
	testutil.RequirePrivileged(t)
	d, err := LoadDecap("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.SetVIPs([]netip.Addr{addr("10.200.1.1"), addr("fc00:1::1")}); err != nil {
		t.Fatal(err)
	}
	udp := udp4("192.168.1.1", 31337, "10.200.1.1", 80, payload)
	other := udp4("192.168.1.1", 31337, "10.200.1.99", 80, payload)
	tcpV6 := tcp6("fc00:2::1", 31337, "fc00:1::1", 80, testpkt.TCPAck, payload)
	// What the real receives is what the balancer sends: its own builders.
	inner := func(typ uint16, ip []byte) []byte { return testpkt.Eth{Dst: gwMAC, Src: lbMAC, Type: typ}.Frame(ip) }
	cases := []packetCase{
		{"IPIP to a VIP", ipip4Out("172.16.104.123", "10.0.0.3", 0, udp), xdpPass, inner(testpkt.EtherTypeIPv4, udp), nil},
		{"IPv4 in IPv6 to a VIP", ip6Out("100::bac1:101", "fc00::1", 0, udp), xdpPass, inner(testpkt.EtherTypeIPv4, udp), nil},
		{"IP6IP6 to a VIP", ip6Out("100::7a69:1", "fc00::3", 0, tcpV6), xdpPass, inner(testpkt.EtherTypeIPv6, tcpV6), nil},
		{"IPIP to another address: untouched", ipip4Out("172.16.104.123", "10.0.0.3", 0, other), xdpPass, nil, nil},
		{"plain traffic: untouched", ethIn(testpkt.EtherTypeIPv4, udp), xdpPass, nil, nil},
		{"truncated IPIP: untouched", ipip4Out("172.16.104.123", "10.0.0.3", 0, udp)[:40], xdpPass, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			act, got := run(t, d.Program(), tc.in)
			want := tc.out
			if want == nil {
				want = tc.in
			}
			if act != tc.want {
				t.Fatalf("action %d, want %d", act, tc.want)
			}
			if diff := testpkt.Diff(got, want); diff != "" {
				t.Fatal(diff)
			}
		})
	}
	st, err := d.Stats()
	if err != nil || st.Decapsulated != 3 || st.Passed != 3 {
		t.Fatalf("stats %+v %v, want 3 decapsulated, 3 passed", st, err)
	}
	// Narrowing the VIP set stops decapsulation for the removed VIP.
	if err := d.SetVIPs([]netip.Addr{addr("fc00:1::1")}); err != nil {
		t.Fatal(err)
	}
	frame := ipip4Out("172.16.104.123", "10.0.0.3", 0, udp)
	if _, got := run(t, d.Program(), frame); testpkt.Diff(got, frame) != "" {
		t.Fatalf("removed VIP still decapsulated: %s", testpkt.Describe(got))
	}
}
