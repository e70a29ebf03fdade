package e2e

import (
	"net/netip"
	"testing"

	"vipcast/test/lab"
)

// Scenario 1: HTTP to an IPv4 VIP and to an IPv6 VIP (and to an IPv4 VIP
// served by IPv6 reals) from the client. Answers come from the reals
// directly: on the wire, the fabric port of the LB carries the requests
// to the VIP and not one packet from the VIP, while the client's port
// carries every answer.
func TestDirectServerReturn(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	cases := []struct {
		name  string
		vip   netip.Addr
		encap string
	}{
		{"ipv4 VIP, IPIP", lab.VIP4, "ipip"},
		{"ipv6 VIP, IP6IP6", lab.VIP6, "ip6ip6"},
		{"ipv4 VIP, IPv6 reals (4in6)", lab.VIP4in6, "4in6"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vip := vipOf(tc.vip, "tcp")
			family, client := "ip", lab.ClientV4
			if tc.vip.Is6() {
				family, client = "ip6", lab.ClientV6
			}
			// Health checks also come from the VIP, to the LB's own address:
			// the filters look at client traffic only.
			fromVIP := family + " src host " + tc.vip.String() + " and dst host " + client.String()
			toVIP := family + " src host " + client.String() + " and dst host " + tc.vip.String()
			// What reaches the LB from the VIP, and what reaches it for the VIP.
			fromVIPAtLB, err := lab.StartCapture(l.Fabric, lb1.Name, fromVIP)
			if err != nil {
				t.Fatal(err)
			}
			toVIPAtLB, err := lab.StartCapture(l.Fabric, lb1.Name, toVIP)
			if err != nil {
				t.Fatal(err)
			}
			fromVIPAtClient, err := lab.StartCapture(l.Fabric, "client", fromVIP)
			if err != nil {
				t.Fatal(err)
			}
			before := vipPackets(stats(t, lb1), vip)

			const n = 30
			got := lab.Reals{}
			for i := 0; i < n; i++ {
				rep, err := lab.Get(l.Client, ap(tc.vip, lab.HTTPPort), "/", lab.DialOptions{})
				if err != nil {
					t.Fatalf("request %d to %s: %v", i, tc.vip, err)
				}
				got[rep.Real]++
			}
			atLB, toLB, atClient := fromVIPAtLB.Stop(), toVIPAtLB.Stop(), fromVIPAtClient.Stop()
			forwarded := vipPackets(stats(t, lb1), vip) - before
			t.Logf("%d requests to %s answered by %s; packets from the VIP: %d at the LB's port, %d at the client's; packets to the VIP at the LB's port: %d; LB forwarded %d",
				n, tc.vip, got, len(atLB), len(atClient), len(toLB), forwarded)

			if len(got) < 2 {
				t.Errorf("all %d connections went to one real: %s", n, got)
			}
			if len(atLB) != 0 {
				t.Errorf("%d packets from the VIP passed the LB's port, want 0 (no DSR); first: %s", len(atLB), atLB[0])
			}
			// Each connection: SYN-ACK, the answer, FIN at least.
			if len(atClient) < 3*n {
				t.Errorf("the client's port saw %d packets from the VIP, want >= %d (the capture is not seeing the answers)", len(atClient), 3*n)
			}
			// Each connection: SYN, request, ACKs, FIN through the LB.
			if len(toLB) < 3*n || forwarded < 3*n {
				t.Errorf("requests through the LB: %d packets on the wire, %d forwarded by XDP, want >= %d each", len(toLB), forwarded, 3*n)
			}
		})
	}
}
