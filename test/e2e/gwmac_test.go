package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"vipcast/api"
	vipcastcli "vipcast/cli"
	"vipcast/test/lab"
)

// Issue 11, "the gateway changes MAC → forwarding follows".
//
// The LB's default gateway is the lab's router: the balancer (XDP) and the
// health checks (TC egress) address every encapsulated frame to the
// router's MAC, and the router forwards it to the real on the same
// segment. Here the router's eth0 takes a new MAC during live traffic, as
// after a router failover or a replaced card, and announces it the way
// Linux does by itself with arp_notify and ndisc_notify set: a gratuitous
// ARP and an unsolicited neighbour advertisement. From then on the
// router's kernel drops frames still sent to the old MAC (they are for
// another host), so only a data plane that follows keeps forwarding.
func TestGatewayMACChange(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]
	oldMAC := routerMAC(t, l)
	newMAC := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x01, 0x01}
	if oldMAC.String() == newMAC.String() {
		t.Fatalf("the router already has %s", newMAC)
	}
	if gw := gatewayOf(t, lb1); gw.GetMac() != oldMAC.String() {
		t.Fatalf("before the change vipcastd uses %q (%s), want the router's %s", gw.GetMac(), gw.GetError(), oldMAC)
	}
	// The old MAC must really stop working, or the test could not fail:
	// a promiscuous router NIC would still take frames for it.
	routerPromisc(t, l)

	// The router announces its new MAC by itself, as a production router
	// whose address moves does (gratuitous ARP, unsolicited NA). The
	// settings and the MAC are put back afterwards, announced the same way,
	// and the LB must follow back before the next scenario.
	notify := []string{"net.ipv4.conf.eth0.arp_notify", "net.ipv6.conf.eth0.ndisc_notify"}
	saved := map[string]string{}
	for _, k := range notify {
		saved[k] = strings.TrimSpace(mustExec(t, l.Router, "cat", "/proc/sys/"+strings.ReplaceAll(k, ".", "/")))
		if err := l.Router.Sysctl(k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := setRouterMAC(l, oldMAC); err != nil {
			t.Errorf("put the router's MAC back: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for gatewayOf(t, lb1).GetMac() != oldMAC.String() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if gw := gatewayOf(t, lb1); gw.GetMac() != oldMAC.String() {
			t.Errorf("the router's MAC is back to %s but vipcastd uses %q (%s) after 10 s", oldMAC, gw.GetMac(), gw.GetError())
		}
		for _, k := range notify {
			if err := l.Router.Sysctl(k, saved[k]); err != nil {
				t.Error(err)
			}
		}
	})

	// A datagram encapsulated as the balancer would, sent by hand from the
	// LB's interface to a chosen MAC: while the router has the old MAC it is
	// echoed, afterwards only the new MAC is. This shows the assertions
	// below measure the MAC in use, whatever else the fabric does.
	control := newControlFlow(t, l)
	if err := control.try(oldMAC, "old-before"); err != nil {
		t.Fatalf("control: a hand-made encapsulated datagram to the router's current MAC %s: %v", oldMAC, err)
	}

	// Watched the whole time: the VIPs' routes at BIRD, the BGP sessions,
	// and the health of every real as vipcastd reports it.
	var routeMissing, sessionDown atomic.Int64
	var healthMu sync.Mutex
	var notUp []string
	stop := make(chan struct{})
	var watchers sync.WaitGroup
	watchers.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for _, vip := range []netip.Addr{lab.VIP4, lab.VIP4UDP, lab.VIP6} {
				if ok, err := l.Bird.HasRoute(prefixOf(vip)); err == nil && !ok {
					routeMissing.Add(1)
				}
			}
			for _, p := range []string{"lb1v4", "lb1v6"} {
				if st := l.Bird.ProtocolState(p); st != "Established" {
					sessionDown.Add(1)
				}
			}
		}
	})
	watchers.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := lb1.API().ListVIPs(ctx, &api.ListVIPsRequest{})
			cancel()
			if err != nil {
				continue
			}
			for _, v := range resp.GetVips() {
				for _, r := range v.GetReals() {
					if r.GetState() == "up" && r.GetHealth() != "up" {
						healthMu.Lock()
						notUp = append(notUp, fmt.Sprintf("%s real %s %s at %s", v.GetVip().GetKey(), r.GetAddress(), r.GetHealth(), time.Now().Format("15:04:05.000")))
						healthMu.Unlock()
					}
				}
			}
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		watchers.Wait()
	}()

	// On the wire, at the LB's fabric port: the LB's encapsulated frames
	// (IPIP, IP6IP6, IPv4 in IPv6) with their Ethernet header, and what
	// the router says from its new MAC (ARP, ICMPv6).
	filter := fmt.Sprintf("(ether src %s and ((ip and ip proto 4) or (ip6 and (ip6[6] == 41 or ip6[6] == 4)))) or (ether src %s and (arp or icmp6))", lb1.MAC(), newMAC)
	capture, err := lab.StartTimedCapture(l.Fabric, lb1.Name, filter, "-e")
	if err != nil {
		t.Fatal(err)
	}
	captureStopped := false
	defer func() {
		if !captureStopped {
			capture.Stop()
		}
	}()

	// Live traffic: a long TCP transfer, a UDP stream at one datagram per
	// millisecond, and new HTTP connections to the IPv4 and IPv6 VIPs.
	stream, err := lab.StartStream(l.Client, ap(lab.VIP4, lab.HTTPPort), 8<<20, 8*time.Second, lab.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bufErrsBefore, _ := l.UDPBufferErrors()
	ingressBefore, _ := lb1.IngressDrops()
	udp := startUDPStream(t, l, time.Millisecond)
	type attempt struct {
		at  time.Time
		vip netip.Addr
		d   time.Duration
		err error
	}
	var (
		connMu   sync.Mutex
		attempts []attempt
		conns    sync.WaitGroup
	)
	connStop := make(chan struct{})
	conns.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-connStop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			vip := []netip.Addr{lab.VIP4, lab.VIP6}[i%2]
			start := time.Now()
			// A SYN lost while the data plane still used the old MAC is
			// sent again after 1 s: the connection is slow, not failed.
			_, err := lab.Get(l.Client, ap(vip, lab.HTTPPort), "/", lab.DialOptions{Timeout: 4 * time.Second})
			connMu.Lock()
			attempts = append(attempts, attempt{start, vip, time.Since(start), err})
			connMu.Unlock()
		}
	})
	stopConns := func() {
		select {
		case <-connStop:
		default:
			close(connStop)
		}
		conns.Wait()
	}
	defer stopConns()

	// Traffic and health checks run on the old MAC first.
	time.Sleep(time.Second)

	t0 := time.Now()
	if err := setRouterMAC(l, newMAC); err != nil {
		t.Fatal(err)
	}
	changed := time.Since(t0)
	waitFor(t, 10*time.Second, time.Millisecond, "vipcastd reports the router's new MAC", func() (bool, string) {
		gw := gatewayOf(t, lb1)
		return gw.GetMac() == newMAC.String(), fmt.Sprintf("gateway %q from %q, error %q", gw.GetMac(), gw.GetSource(), gw.GetError())
	})
	apiSeen := time.Now()
	apiFollow := apiSeen.Sub(t0)
	// Several check rounds (interval 200 ms, fall 2) on the new MAC while
	// the transfer and the stream go on.
	time.Sleep(3 * time.Second)
	captureStopped = true
	lines := capture.Stop()

	// The control again: the old MAC no longer gets through, the new one does.
	if err := control.try(oldMAC, "old-after"); err == nil {
		t.Errorf("control: a datagram encapsulated to the router's old MAC %s still got through after the change; the fabric does not depend on the MAC and this test proves nothing", oldMAC)
	}
	if err := control.try(newMAC, "new-after"); err != nil {
		t.Errorf("control: a datagram encapsulated to the router's new MAC %s: %v", newMAC, err)
	}

	n, streamErr := stream.Finish()
	stopConns()
	sent, lost, reals, sockErrs := udp.finish()
	lostAt := udp.lostAt()
	close(stop)
	watchers.Wait()
	bufErrsAfter, _ := l.UDPBufferErrors()
	ingressAfter, _ := lb1.IngressDrops()
	hostDrops := int64(bufErrsAfter-bufErrsBefore) + int64(ingressAfter-ingressBefore)

	// What the wire says.
	w := readWire(t, lines, lb1, oldMAC, newMAC, t0)
	if w.unparsed > 0 {
		t.Logf("%d capture lines not understood", w.unparsed)
	}
	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return at.Sub(t0).Round(10 * time.Microsecond).String()
	}
	programmed, ok := lb1.Event(t0, "gateway MAC in use", map[string]string{"mac": newMAC.String()})
	if !ok {
		t.Errorf("vipcastd did not log %q with mac=%s after the change", "gateway MAC in use", newMAC)
	}
	t.Logf("router eth0 %s → %s (netlink call took %s); after the change: announced on the LB's port %s, vipcastd programmed the new MAC %s (its log), API reported it %s, first data frame to the new MAC %s, first health check %s",
		oldMAC, newMAC, changed.Round(time.Microsecond), since(w.announced), since(programmed), apiFollow.Round(10*time.Microsecond),
		since(w.firstNew["data"]), since(w.firstNew["hc"]))
	t.Logf("frames the LB sent to the old MAC after the change (lost at the router): %d data, %d health checks; last ones %s and %s",
		w.oldAfter["data"], w.oldAfter["hc"], since(w.lastOld["data"]), since(w.lastOld["hc"]))

	// Forwarding follows: frames of both kinds to the new MAC, none to the
	// old one once vipcastd says it switched (a margin for frames already
	// in flight on the way to the capture).
	settled := apiSeen.Add(50 * time.Millisecond)
	for _, kind := range []string{"data", "hc"} {
		if w.newAfter(kind, settled) == 0 {
			t.Errorf("no %s frame from the LB to the new MAC %s after vipcastd switched to it", kind, newMAC)
		}
		if last := w.lastOld[kind]; last.After(settled) {
			t.Errorf("%s frames from the LB still went to the old MAC %s %s after the change, after vipcastd reported the new one (%s)", kind, oldMAC, since(last), apiFollow.Round(time.Millisecond))
		}
		if c := w.otherMAC[kind]; c > 0 {
			t.Errorf("%d %s frames from the LB to neither the old nor the new gateway MAC", c, kind)
		}
	}
	if w.announced.IsZero() {
		t.Errorf("no gratuitous ARP or unsolicited NA from %s seen on the LB's port: the change was not announced as the scenario intends", newMAC)
	}

	// vipcastd's view agrees, through the API and the CLI.
	gw := gatewayOf(t, lb1)
	if gw.GetMac() != newMAC.String() || gw.GetNextHop() != lab.RouterV4.String() || gw.GetError() != "" {
		t.Errorf("GetGateway: mac %q next hop %q error %q; want %s via %s, no error", gw.GetMac(), gw.GetNextHop(), gw.GetError(), newMAC, lab.RouterV4)
	}
	var shown vipcastcli.Gateway
	if out := cli(t, lb1, "gateway", "-j"); json.Unmarshal([]byte(out), &shown) != nil || shown.MAC != newMAC.String() {
		t.Errorf("`vipcast gateway -j` shows %q, want the new MAC %s", out, newMAC)
	}

	// The transfer survives, byte for byte.
	if streamErr != nil {
		t.Errorf("the TCP transfer from %s across the MAC change broke after %d bytes: %v", stream.Real, n, streamErr)
	}

	// New connections keep succeeding.
	var failed []string
	var slowest time.Duration
	for _, a := range attempts {
		slowest = max(slowest, a.d)
		if a.err != nil {
			failed = append(failed, fmt.Sprintf("%s at %s: %v", a.vip, since(a.at), a.err))
		}
	}
	t.Logf("new connections through the VIPs: %d, %d failed, slowest %s", len(attempts), len(failed), slowest.Round(time.Millisecond))
	if len(failed) > 0 {
		t.Errorf("new connections failed across the MAC change:\n%s", strings.Join(failed, "\n"))
	}
	if len(attempts) < 20 {
		t.Errorf("only %d new connections were tried; the check means little", len(attempts))
	}

	// The UDP stream: the datagrams lost are those that met the old MAC
	// somewhere (the LB's data plane, or the client's own ARP entry for
	// the router); the stream resumes on the same real.
	var lostWindow string
	if len(lostAt) > 0 {
		lostWindow = fmt.Sprintf(", sent from %s to %s", since(lostAt[0]), since(lostAt[len(lostAt)-1]))
	}
	t.Logf("UDP stream at 1/ms: %d sent, %d not echoed%s (relative to the change; %d dropped by busy hosts or before the LB's XDP program); echoed by %v; socket errors %q",
		sent, lost, lostWindow, hostDrops, reals, sockErrs)
	var lateLost int64
	for _, at := range lostAt {
		if at.After(t0.Add(2 * time.Second)) {
			lateLost++
		}
	}
	if lateLost > hostDrops {
		t.Errorf("%d datagrams sent more than 2 s after the change were lost (%d explained by busy hosts): forwarding did not resume", lateLost, hostDrops)
	}
	if len(reals) != 1 {
		t.Errorf("the UDP flow changed real across the MAC change: %v", reals)
	}

	// Health checks follow too, and nothing was withdrawn.
	if at, ok := lb1.Event(t0, "real down", nil); ok {
		t.Errorf("vipcastd judged a real down %s after the gateway MAC change:\n%s", since(at), lastLines(lb1.Process().Output(), 20))
	}
	healthMu.Lock()
	if len(notUp) > 0 {
		t.Errorf("reals not up during the change (%d polls):\n%s", len(notUp), strings.Join(notUp[:min(len(notUp), 10)], "\n"))
	}
	healthMu.Unlock()
	if c := routeMissing.Load(); c > 0 {
		t.Errorf("a VIP's route left BIRD during the MAC change (%d polls without it)", c)
	}
	if c := sessionDown.Load(); c > 0 {
		t.Errorf("LB1's BGP sessions were not established in %d polls during the MAC change", c)
	}
	if t.Failed() {
		t.Logf("capture around the change:\n%s", strings.Join(w.around(lines, 30), "\n"))
	}
}

// routerMAC is the router's eth0 address, as its kernel has it.
func routerMAC(t *testing.T, l *lab.Lab) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := l.Router.Do(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		mac = link.Attrs().HardwareAddr
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// routerPromisc fails the test if the router's eth0 accepts frames for
// any MAC.
func routerPromisc(t *testing.T, l *lab.Lab) {
	t.Helper()
	if err := l.Router.Do(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if link.Attrs().Promisc != 0 || link.Attrs().RawFlags&unix.IFF_PROMISC != 0 {
			return errors.New("the router's eth0 is promiscuous: it would take frames to its old MAC too")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// setRouterMAC changes the router's eth0 address while it is up, as a
// failover moves a gateway to other hardware; with arp_notify and
// ndisc_notify set its kernel announces the change.
func setRouterMAC(l *lab.Lab, mac net.HardwareAddr) error {
	return l.Router.Do(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(link, mac)
	})
}

func gatewayOf(t *testing.T, x *lab.LB) *api.GetGatewayResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gw, err := x.API().GetGateway(ctx, &api.GetGatewayRequest{})
	if err != nil {
		t.Fatalf("%s: GetGateway: %v", x.Name, err)
	}
	return gw
}

// controlFlow sends single UDP datagrams to the UDP VIP's echo server on
// real1 as the balancer would, encapsulated (IPIP) from the LB's interface,
// with the Ethernet destination chosen by the caller. The echo comes back
// directly to the client's socket.
type controlFlow struct {
	l      *lab.Lab
	conn   net.Conn
	client netip.AddrPort
}

func newControlFlow(t *testing.T, l *lab.Lab) *controlFlow {
	t.Helper()
	conn, err := lab.Dial(l.Client, "udp", ap(lab.VIP4UDP, lab.UDPPort), lab.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return &controlFlow{l: l, conn: conn, client: client}
}

// try sends one datagram with payload to dst and waits up to a second for
// its echo.
func (c *controlFlow) try(dst net.HardwareAddr, payload string) error {
	lb1, real := c.l.LBs[0], c.l.Reals[0]
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:2], c.client.Port())
	binary.BigEndian.PutUint16(udp[2:4], lab.UDPPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	udp = append(udp, payload...) // checksum 0: none, valid for IPv4
	inner := withChecksum(ipv4(c.client.Addr(), lab.VIP4UDP, 17, nil, udp))
	outer := withChecksum(ipv4(lb1.V4, real.V4, 4, nil, inner))
	frame := frames{dst: dst, src: lb1.MAC()}.eth(0x0800, outer)
	if err := lab.SendFrames(lb1.NS, lb1.Iface, [][]byte{frame}, 0, 0); err != nil {
		return err
	}
	buf := make([]byte, 512)
	_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			return fmt.Errorf("no echo: %w", err)
		}
		// An echo of an earlier try that arrived late is skipped.
		if got := string(buf[:n]); strings.HasPrefix(got, payload+" ") {
			return nil
		}
	}
}

// withChecksum fills in an IPv4 header's checksum.
func withChecksum(pkt []byte) []byte {
	ihl := int(pkt[0]&0x0f) * 4
	pkt[10], pkt[11] = 0, 0
	var sum uint32
	for i := 0; i < ihl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pkt[i : i+2]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(pkt[10:12], ^uint16(sum))
	return pkt
}

// wire is what a capture at the LB's port says about the change: per kind
// of frame ("data": a client's packet the balancer encapsulated; "hc": a
// health check, whose inner source is the LB), where they went.
type wire struct {
	t0        time.Time
	announced time.Time // first ARP/NA from the new MAC after t0
	firstNew  map[string]time.Time
	lastOld   map[string]time.Time
	oldAfter  map[string]int // to the old MAC, captured after t0
	otherMAC  map[string]int
	newTimes  map[string][]time.Time
	unparsed  int
	changeAt  int // index of the first line captured after t0
}

// innerSrc finds the inner packet's source in a line of `tcpdump -e -n`
// for an encapsulated frame: "... length N: OUTER > OUTER: [IP|IP6 ]SRC.PORT > ...".
var innerSrc = regexp.MustCompile(`length \d+: (?:IP6? )?\S+ > \S+: (?:IP6? )?(\S+)\.\d+ > `)

func readWire(t *testing.T, lines []string, lb1 *lab.LB, oldMAC, newMAC net.HardwareAddr, t0 time.Time) *wire {
	t.Helper()
	w := &wire{t0: t0, firstNew: map[string]time.Time{}, lastOld: map[string]time.Time{}, oldAfter: map[string]int{},
		otherMAC: map[string]int{}, newTimes: map[string][]time.Time{}, changeAt: len(lines)}
	clientAddrs := map[string]bool{lab.ClientV4.String(): true, lab.ClientV6.String(): true}
	lbAddrs := map[string]bool{lb1.V4.String(): true, lb1.V6.String(): true}
	for i, line := range lines {
		at, rest, err := lab.ParseCaptureTime(line)
		f := strings.Fields(rest)
		if err != nil || len(f) < 4 || f[1] != ">" {
			w.unparsed++
			continue
		}
		if at.After(t0) && w.changeAt == len(lines) {
			w.changeAt = i
		}
		src, dst := f[0], strings.TrimSuffix(f[2], ",")
		if src == newMAC.String() {
			if at.After(t0) && w.announced.IsZero() && (strings.Contains(rest, "ARP") || strings.Contains(rest, "neighbor advertisement")) {
				w.announced = at
			}
			continue
		}
		m := innerSrc.FindStringSubmatch(rest)
		if m == nil {
			w.unparsed++
			continue
		}
		var kind string
		switch {
		case lbAddrs[m[1]]:
			kind = "hc"
		case clientAddrs[m[1]]:
			kind = "data"
		default:
			w.unparsed++
			continue
		}
		switch dst {
		case newMAC.String():
			if w.firstNew[kind].IsZero() {
				w.firstNew[kind] = at
			}
			w.newTimes[kind] = append(w.newTimes[kind], at)
		case oldMAC.String():
			w.lastOld[kind] = at
			if at.After(t0) {
				w.oldAfter[kind]++
			}
		default:
			w.otherMAC[kind]++
		}
	}
	return w
}

// newAfter counts frames of a kind to the new MAC captured after at.
func (w *wire) newAfter(kind string, at time.Time) int {
	n := 0
	for _, x := range w.newTimes[kind] {
		if x.After(at) {
			n++
		}
	}
	return n
}

// around returns up to n lines each side of the change.
func (w *wire) around(lines []string, n int) []string {
	return lines[max(0, w.changeAt-n):min(len(lines), w.changeAt+n)]
}
