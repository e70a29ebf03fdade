package neigh

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"

	"vipcast/internal/testutil"
)

// Lab addresses (TESTBED.md): the LB and the router on the fabric
// segment. router2 stands in for a replacement gateway on the same segment.
var (
	lbV4      = netip.MustParseAddr("192.0.2.2")
	lbV6      = netip.MustParseAddr("2001:db8:0:1::2")
	routerV4  = netip.MustParseAddr("192.0.2.1")
	routerV6  = netip.MustParseAddr("2001:db8:0:1::1")
	router2V4 = netip.MustParseAddr("192.0.2.3")
	router2V6 = netip.MustParseAddr("2001:db8:0:1::3")
)

// lab is an LB namespace whose eth0 sits on a bridge (in its own
// namespace) with one or two router namespaces. Routers answer ARP and NDP
// with their kernels; their eth0 MACs are read back from the kernel.
type lab struct {
	lb, fab   *testutil.NS
	rtr, rtr2 *testutil.NS
	rtrMAC    net.HardwareAddr
	rtr2MAC   net.HardwareAddr
}

type labOpts struct {
	router2  bool // a second router with router2V4/router2V6
	defaults bool // default routes via the first router in the LB
}

func newLab(t *testing.T, o labOpts) *lab {
	t.Helper()
	testutil.RequirePrivileged(t)
	id := testutil.RunID()
	l := &lab{
		fab: testutil.NewNS(t, id, "fab"),
		lb:  testutil.NewNS(t, id, "lb"),
		rtr: testutil.NewNS(t, id, "rtr"),
	}
	hosts := []*testutil.NS{l.lb, l.rtr}
	if o.router2 {
		l.rtr2 = testutil.NewNS(t, id, "rtr2")
		hosts = append(hosts, l.rtr2)
	}
	l.fab.MustExec(t, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	l.fab.MustExec(t, "ip", "link", "set", "br0", "up")
	for i, h := range hosts {
		// Addresses come up usable at once instead of after DAD; set
		// before the veth arrives so its link-local inherits it.
		h.MustExec(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
		port := []string{"lb", "rtr", "rtr2"}[i]
		testutil.Veth(t, h, "eth0", l.fab, port)
		l.fab.MustExec(t, "ip", "link", "set", port, "master", "br0")
	}
	addrs := []struct {
		ns     *testutil.NS
		v4, v6 netip.Addr
	}{{l.lb, lbV4, lbV6}, {l.rtr, routerV4, routerV6}}
	if o.router2 {
		addrs = append(addrs, struct {
			ns     *testutil.NS
			v4, v6 netip.Addr
		}{l.rtr2, router2V4, router2V6})
	}
	for _, a := range addrs {
		a.ns.MustExec(t, "ip", "addr", "add", a.v4.String()+"/24", "dev", "eth0")
		a.ns.MustExec(t, "ip", "addr", "add", a.v6.String()+"/64", "dev", "eth0", "nodad")
	}
	l.rtrMAC = linkMAC(t, l.rtr, "eth0")
	if o.router2 {
		l.rtr2MAC = linkMAC(t, l.rtr2, "eth0")
	}
	if o.defaults {
		l.lb.MustExec(t, "ip", "route", "add", "default", "via", routerV4.String(), "dev", "eth0")
		l.lb.MustExec(t, "ip", "-6", "route", "add", "default", "via", routerV6.String(), "dev", "eth0")
	}
	return l
}

func linkMAC(t *testing.T, ns *testutil.NS, dev string) net.HardwareAddr {
	t.Helper()
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(ns.MustExec(t, "ip", "-j", "link", "show", "dev", dev), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s in %s: %v", dev, ns.Name, err)
	}
	mac, err := net.ParseMAC(links[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// handle opens a netlink handle in ns, for changes whose latency is
// measured (no process to spawn between the clock and the change).
func handle(t *testing.T, ns *testutil.NS) *netlink.Handle {
	t.Helper()
	nsh, err := netns.GetFromPath(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// running is a Resolver whose Run goroutine the test owns.
type running struct {
	*Resolver
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	took   time.Duration
}

// start runs a Resolver until the test ends; cleanup checks that Run
// returns nil promptly.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return run(t, r)
}

func run(t *testing.T, r *Resolver) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{Resolver: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		rr.stop(t)
		_ = r.Close()
	})
	return rr
}

// stop cancels Run and waits (bounded) for it to return; it reports how
// long that took.
func (rr *running) stop(t *testing.T) time.Duration {
	t.Helper()
	rr.once.Do(func() {
		begin := time.Now()
		rr.cancel()
		select {
		case err := <-rr.done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of cancel")
		}
		rr.took = time.Since(begin)
	})
	return rr.took
}

// await waits up to timeout for a result matching want, watching both
// Updates and Current (per-family details change without an update).
func (rr *running) await(t *testing.T, timeout time.Duration, what string, want func(Gateway) bool) Gateway {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case g, ok := <-rr.Updates():
			if ok && want(g) {
				return g
			}
		case <-tick.C:
			if g := rr.Current(); want(g) {
				return g
			}
		case <-deadline:
			t.Fatalf("%s: not seen within %s; current: %s (v4: %s; v6: %s)", what, timeout, rr.Current(), rr.Current().IPv4, rr.Current().IPv6)
		}
	}
}

func macIs(mac net.HardwareAddr) func(Gateway) bool {
	return func(g Gateway) bool { return g.MAC.String() == mac.String() }
}

// sendGratuitousARP announces ip at the interface's current MAC from
// inside ns, as a router does after its MAC changed (VRRP failover...).
func sendGratuitousARP(t *testing.T, ns *testutil.NS, dev string, ip netip.Addr) {
	t.Helper()
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer c.Close()
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err != nil {
			return err
		}
		return c.WriteTo(p, ethernet.Broadcast)
	})
	if err != nil {
		t.Fatalf("gratuitous ARP from %s: %v", ns.Name, err)
	}
}

// sendUnsolicitedNA is the IPv6 counterpart: a Neighbor Advertisement
// with the override flag to all nodes, from ip's interface in ns.
func sendUnsolicitedNA(t *testing.T, ns *testutil.NS, dev string, ip netip.Addr) {
	t.Helper()
	nsh, err := netns.GetFromPath(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	h := handle(t, ns)
	link, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	p := probe{ns: nsh, ifindex: link.Attrs().Index, ifname: dev, ifmac: link.Attrs().HardwareAddr, src: ip}
	conn, err := p.icmp6Socket()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := ndp.MarshalMessage(&ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: p.ifmac}},
	})
	if err != nil {
		t.Fatal(err)
	}
	allNodes := &net.IPAddr{IP: net.ParseIP("ff02::1")}
	if _, err := conn.WriteTo(b, &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: p.ifindex}, allNodes); err != nil {
		t.Fatalf("unsolicited NA from %s: %v", ns.Name, err)
	}
}

// neighState is the LB kernel's entry for ip, as `ip neigh` prints it.
func neighState(t *testing.T, ns *testutil.NS, ip netip.Addr) string {
	t.Helper()
	return strings.TrimSpace(string(ns.MustExec(t, "ip", "neigh", "show", ip.String(), "dev", "eth0")))
}
