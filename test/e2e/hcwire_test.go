package e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"vipcast/api"
	"vipcast/test/lab"
)

// Scenario 9: health checks on the wire. vipcastd's checks leave the LB
// encapsulated to the real they check (IPIP, IP6IP6, IPv4-in-IPv6), the
// inner packet going from the LB to VIP:port exactly as a client's would;
// and a packet sent with a real's socket mark goes to that real and no
// other (its echo names the real that answered).
func TestHealthcheckForwardingOnTheWire(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	filter := fmt.Sprintf("(ip and ip proto 4 and src host %s) or (ip6 and src host %s and (ip6[6] == 41 or ip6[6] == 4))", lb1.V4, lb1.V6)
	capture, err := lab.StartCapture(l.Fabric, lb1.Name, filter)
	if err != nil {
		t.Fatal(err)
	}

	// Our own probes, one per real, marked with the real's mark.
	ctx := bounded(t, 10*time.Second)
	marks, err := lb1.API().ListHealthcheckMarks(ctx, &api.ListHealthcheckMarksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	markOf := map[string]uint32{}
	for _, m := range marks.GetMarks() {
		markOf[m.GetReal()] = m.GetMark()
	}
	for _, r := range l.Reals {
		mark := markOf[r.V4.String()]
		if mark == 0 {
			t.Fatalf("no healthcheck mark for %s: %v", r.V4, marks.GetMarks())
		}
		conn, err := lab.Dial(lb1.NS, "udp", ap(lab.VIP4UDP, lab.UDPPort), lab.DialOptions{Mark: mark})
		if err != nil {
			t.Fatal(err)
		}
		payload := "probe-for-" + r.Name
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte(payload)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil {
			t.Errorf("probe with %s's mark %d: no echo: %v", r.Name, mark, err)
			continue
		}
		if got, want := string(buf[:n]), payload+" "+r.Name; got != want {
			t.Errorf("probe with %s's mark %d: echo %q, want %q (the mark went to the wrong real)", r.Name, mark, got, want)
		} else {
			t.Logf("mark %d → %s: echo %q", mark, r.Name, got)
		}
	}
	time.Sleep(3 * lab.LabCheck.Interval) // a few rounds of vipcastd's own checks
	lines := capture.Stop()
	t.Logf("captured %d encapsulated packets from the LB on its fabric port (%s)", len(lines), filter)

	q := regexp.QuoteMeta
	hcLen := fmt.Sprint(len(lab.UDPCheck.Payload)) // vipcastd's UDP check, not our probes
	for _, r := range l.Reals {
		cases := []struct {
			what string
			re   string
		}{
			{"IPIP, TCP check of " + lab.VIP4.String(),
				`^IP ` + q(lb1.V4.String()) + ` > ` + q(r.V4.String()) + `: IP ` + q(lb1.V4.String()) + `\.\d+ > ` + q(lab.VIP4.String()) + `\.80: Flags \[S\]`},
			{"IPIP, UDP check of " + lab.VIP4UDP.String(),
				`^IP ` + q(lb1.V4.String()) + ` > ` + q(r.V4.String()) + `: IP ` + q(lb1.V4.String()) + `\.\d+ > ` + q(lab.VIP4UDP.String()) + `\.` + fmt.Sprint(lab.UDPPort) + `: UDP, length ` + hcLen + `$`},
			{"IP6IP6, TCP check of " + lab.VIP6.String(),
				`^IP6 ` + q(lb1.V6.String()) + ` > ` + q(r.V6.String()) + `: IP6 ` + q(lb1.V6.String()) + `\.\d+ > ` + q(lab.VIP6.String()) + `\.80: Flags \[S\]`},
			{"IP6IP6, UDP check of " + lab.VIP6UDP.String(),
				`^IP6 ` + q(lb1.V6.String()) + ` > ` + q(r.V6.String()) + `: IP6 ` + q(lb1.V6.String()) + `\.\d+ > ` + q(lab.VIP6UDP.String()) + `\.` + fmt.Sprint(lab.UDPPort) + `: UDP, length ` + hcLen + `$`},
			{"IPv4 in IPv6, TCP check of " + lab.VIP4in6.String(),
				`^IP6 ` + q(lb1.V6.String()) + ` > ` + q(r.V6.String()) + `: IP ` + q(lb1.V4.String()) + `\.\d+ > ` + q(lab.VIP4in6.String()) + `\.80: Flags \[S\]`},
			{"our probe, IPIP",
				`^IP ` + q(lb1.V4.String()) + ` > ` + q(r.V4.String()) + `: IP ` + q(lb1.V4.String()) + `\.\d+ > ` + q(lab.VIP4UDP.String()) + `\.` + fmt.Sprint(lab.UDPPort) + `: UDP, length ` + fmt.Sprint(len("probe-for-"+r.Name))},
		}
		for _, c := range cases {
			re := regexp.MustCompile(c.re)
			var match string
			for _, line := range lines {
				if re.MatchString(line) {
					match = line
					break
				}
			}
			if match == "" {
				t.Errorf("%s: no %s on the wire", r.Name, c.what)
				continue
			}
			t.Logf("%s, %s: %s", r.Name, c.what, match)
		}
	}
	// Every encapsulated packet goes to a real of the lab.
	realAddrs := map[string]bool{}
	for _, r := range l.Reals {
		realAddrs[r.V4.String()], realAddrs[r.V6.String()] = true, true
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		dst := strings.TrimSuffix(f[3], ":")
		if a, err := netip.ParseAddr(dst); err != nil || !realAddrs[a.String()] {
			t.Errorf("encapsulated packet to %s, not a real: %s", dst, line)
			break
		}
	}
	if t.Failed() {
		t.Logf("capture:\n%s", strings.Join(lines[:min(len(lines), 40)], "\n"))
	}
}
