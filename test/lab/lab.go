package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"vipcast/lb"
)

// StateRoot holds one directory per lab (config files, sockets, logs, the
// state file); `lab down` finds leftover labs there.
const StateRoot = "/run/vipcast-lab"

// Binary names the lab expects in Options.Bin.
const (
	DaemonBin = "vipcastd"
	CLIBin    = "vipcast"
	LabBin    = "vipcast-lab" // test/lab/cmd, for `serve` on the reals
)

// Options shape a lab.
type Options struct {
	// ID prefixes every namespace (vc<ID>-<role>); default a random id.
	ID string
	// Bin holds vipcastd and vipcast.
	Bin string
	// ServeBin is a program whose `serve` subcommand runs lab.Serve (the
	// lab command); default Bin/vipcast-lab.
	ServeBin string
	// Detached labs (the lab command) leave their processes running
	// when the caller exits; otherwise they die with it.
	Detached bool
	// LBs is how many LBs run vipcastd after Up (0, 1 or 2). Both LB
	// namespaces always exist.
	LBs int
	// Logf narrates progress; nil is silent.
	Logf func(format string, args ...any)
}

// Lab is the TESTBED.md topology: a bridge (in the fabric namespace) that
// joins a client, a router running BIRD, two LBs and three reals, each in
// a namespace of its own with one veth "eth0".
type Lab struct {
	ID      string
	Dir     string // StateRoot/ID
	PinRoot string // /sys/fs/bpf/vipcast-lab-ID
	Bin     string

	Fabric, Client, Router *NS
	LBs                    []*LB
	Reals                  []*Real
	Bird                   *Bird

	opts Options
	bird *Process
}

// state is what the state file records for `lab status` and `lab down`.
type state struct {
	ID         string    `json:"id"`
	Bin        string    `json:"bin"`
	Created    time.Time `json:"created"`
	Namespaces []string  `json:"namespaces"`
	PinRoot    string    `json:"pin_root"`
}

// UDPBufferErrors sums the UDP receive-buffer and send-buffer errors of
// the client and the reals (/proc/net/snmp of each namespace): datagrams a
// busy host dropped in its sockets, not on the network.
func (l *Lab) UDPBufferErrors() (uint64, error) {
	var total uint64
	nss := []*NS{l.Client}
	for _, r := range l.Reals {
		nss = append(nss, r.NS)
	}
	for _, n := range nss {
		out, err := n.Exec("cat", "/proc/net/snmp")
		if err != nil {
			return 0, err
		}
		var names []string
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = f[1:]
				continue
			}
			for i, v := range f[1:] {
				if i < len(names) && (names[i] == "RcvbufErrors" || names[i] == "SndbufErrors") {
					var x uint64
					fmt.Sscan(v, &x)
					total += x
				}
			}
		}
	}
	return total, nil
}

// SNMP reads a namespace's /proc/net/snmp and snmp6 counters, keyed
// "Ip:InNoRoutes", "Ip6InNoRoutes", ...
func SNMP(ns *NS) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, file := range []string{"/proc/net/snmp", "/proc/net/snmp6"} {
		b, err := ns.Exec("cat", file)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			f := strings.Fields(lines[i])
			switch {
			case len(f) == 2 && !strings.HasSuffix(f[0], ":"):
				var x uint64
				fmt.Sscan(f[1], &x)
				out[f[0]] = x
			case len(f) > 1 && strings.HasSuffix(f[0], ":") && i+1 < len(lines):
				v := strings.Fields(lines[i+1])
				if len(v) != len(f) || v[0] != f[0] {
					continue
				}
				for j := 1; j < len(f); j++ {
					var x uint64
					fmt.Sscan(v[j], &x)
					out[f[0]+f[j]] = x
				}
				i++
			}
		}
	}
	return out, nil
}

// RouterUnreachable counts the destination-unreachable errors the router
// sent (ICMP and ICMPv6): packets it could not forward, as when it had no
// route for them.
func (l *Lab) RouterUnreachable() (uint64, error) {
	m, err := SNMP(l.Router)
	if err != nil {
		return 0, err
	}
	return m["Icmp:OutDestUnreachs"] + m["Icmp6OutDestUnreachs"], nil
}

var validID = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// NewID returns a short random lab id.
func NewID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Up builds the lab and starts BIRD, the reals' servers and vipcastd on
// the first opts.LBs LBs, and waits until every configured VIP is routed
// by BIRD. On error everything built so far is torn down.
func Up(ctx context.Context, opts Options) (l *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces, BPF)")
	}
	for _, tool := range []string{"ip", "nsenter", "ethtool", "bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (scripts/deps.sh installs it): %w", tool, err)
		}
	}
	if opts.ID == "" {
		opts.ID = NewID()
	}
	if !validID.MatchString(opts.ID) {
		return nil, fmt.Errorf("lab id %q: want 1 to 12 lower-case letters and digits", opts.ID)
	}
	if opts.LBs < 0 || opts.LBs > 2 {
		return nil, fmt.Errorf("LBs: %d, want 0, 1 or 2", opts.LBs)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Bin, err = filepath.Abs(opts.Bin); err != nil {
		return nil, err
	}
	if opts.ServeBin == "" {
		opts.ServeBin = filepath.Join(opts.Bin, LabBin)
	}
	for _, b := range []string{filepath.Join(opts.Bin, DaemonBin), filepath.Join(opts.Bin, CLIBin), opts.ServeBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("lab binary: %w (`make build` builds vipcastd and vipcast)", err)
		}
	}
	if err := lb.EnsureBPFFS(); err != nil {
		return nil, err
	}
	l = &Lab{
		ID:      opts.ID,
		Dir:     filepath.Join(StateRoot, opts.ID),
		PinRoot: filepath.Join(lb.BPFFS, "vipcast-lab-"+opts.ID),
		Bin:     opts.Bin,
		opts:    opts,
	}
	if _, err := os.Stat(l.Dir); err == nil {
		return nil, fmt.Errorf("lab %s exists already (%s)", l.ID, l.Dir)
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = l.Down()
			l = nil
		}
	}()
	start := time.Now()
	if err := l.build(); err != nil {
		return l, err
	}
	opts.Logf("lab %s: topology built in %s", l.ID, time.Since(start).Round(time.Millisecond))
	for _, r := range l.Reals {
		if err := r.Setup(); err != nil {
			return l, err
		}
		if err := r.StartServer(); err != nil {
			return l, err
		}
	}
	if err := l.startBird(); err != nil {
		return l, err
	}
	for i := 0; i < opts.LBs && i < len(l.LBs); i++ {
		if err := l.LBs[i].WriteConfig(DefaultConfig()); err != nil {
			return l, err
		}
		if err := l.LBs[i].Start(); err != nil {
			return l, err
		}
	}
	for i := 0; i < opts.LBs && i < len(l.LBs); i++ {
		if err := l.LBs[i].WaitRouted(ctx, DefaultVIPs(), 30*time.Second); err != nil {
			return l, err
		}
	}
	opts.Logf("lab %s: up in %s", l.ID, time.Since(start).Round(time.Millisecond))
	return l, nil
}

// describe fills in the namespaces, LBs and reals of the address plan.
func (l *Lab) describe() {
	l.Fabric, l.Client, l.Router = l.ns("fab"), l.ns("client"), l.ns("rtr")
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("lb%d", i)
		l.LBs = append(l.LBs, &LB{
			Index: i, Name: name, NS: l.ns(name), Iface: "eth0", lab: l,
			V4:         netip.AddrFrom4([4]byte{192, 0, 2, byte(2 * i)}), // .2, .4
			V6:         netip.MustParseAddr(fmt.Sprintf("2001:db8:0:1::%d", 2*i)),
			ConfigPath: filepath.Join(l.Dir, name+".toml"),
			Socket:     filepath.Join(l.Dir, name+".sock"),
			PinDir:     filepath.Join(l.PinRoot, name),
		})
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("real%d", i)
		l.Reals = append(l.Reals, &Real{Index: i, Name: name, NS: l.ns(name), V4: realV4(i), V6: realV6(i), lab: l})
	}
}

func (l *Lab) ns(role string) *NS { return openNS(nsName(l.ID, role)) }

// build creates namespaces, the bridge, the veths, addresses, routes and
// sysctls.
func (l *Lab) build() error {
	st := state{ID: l.ID, Bin: l.Bin, Created: time.Now(), PinRoot: l.PinRoot}
	roles := []string{"fab", "client", "rtr", "lb1", "lb2", "real1", "real2", "real3"}
	for _, r := range roles {
		st.Namespaces = append(st.Namespaces, nsName(l.ID, r))
	}
	// Written first, so `lab down` can remove a half-built lab.
	if err := l.writeState(st); err != nil {
		return err
	}
	for _, r := range roles {
		if _, err := createNS(nsName(l.ID, r)); err != nil {
			return err
		}
	}
	l.describe()

	// The bridge is a plain switch: without this, br_netfilter (where the
	// kernel has it) checks IP headers and drops what the LB should see.
	if _, err := os.Stat("/proc/sys/net/bridge"); err == nil {
		if err := l.Fabric.Sysctl(
			"net.bridge.bridge-nf-call-iptables", "0",
			"net.bridge.bridge-nf-call-ip6tables", "0",
			"net.bridge.bridge-nf-call-arptables", "0",
		); err != nil {
			return err
		}
	}
	if err := l.Fabric.Do(func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("bridge br0: %w", err)
		}
		return netlink.LinkSetUp(br)
	}); err != nil {
		return err
	}
	type host struct {
		role   string
		ns     *NS
		v4, v6 netip.Addr
	}
	hosts := []host{{"client", l.Client, ClientV4, ClientV6}, {"rtr", l.Router, RouterV4, RouterV6}}
	for _, x := range l.LBs {
		hosts = append(hosts, host{x.Name, x.NS, x.V4, x.V6})
	}
	for _, r := range l.Reals {
		hosts = append(hosts, host{r.Name, r.NS, r.V4, r.V6})
	}
	for _, h := range hosts {
		if err := l.plug(h.role, h.ns, h.v4, h.v6); err != nil {
			return err
		}
	}
	// A second client address, for traffic a filter treats differently.
	if _, err := l.Client.Exec("ip", "addr", "add", Client2V4.String()+"/24", "dev", "eth0"); err != nil {
		return err
	}
	// The router forwards on the one segment it shares with everyone:
	// no redirects, no reverse-path filter (the tunnel's outer sources
	// are crafted), and ECMP hashes on ports so flows spread over LBs.
	if err := l.Router.Sysctl(
		"net.ipv4.ip_forward", "1",
		"net.ipv6.conf.all.forwarding", "1",
		"net.ipv4.conf.all.send_redirects", "0",
		"net.ipv4.conf.eth0.send_redirects", "0",
		"net.ipv4.conf.all.rp_filter", "0",
		"net.ipv4.conf.eth0.rp_filter", "0",
		"net.ipv4.fib_multipath_hash_policy", "1",
		"net.ipv6.fib_multipath_hash_policy", "1",
	); err != nil {
		return err
	}
	for _, h := range hosts {
		if h.role == "rtr" {
			continue
		}
		if _, err := h.ns.Exec("ip", "route", "add", "default", "via", RouterV4.String()); err != nil {
			return err
		}
		if _, err := h.ns.Exec("ip", "-6", "route", "add", "default", "via", RouterV6.String()); err != nil {
			return err
		}
	}
	// XDP_TX into a veth needs an XDP program on the peer (TESTBED.md).
	for _, x := range l.LBs {
		if err := pinLBReceive(x.NS, x.Iface); err != nil {
			return err
		}
		if err := attachPass(l.Fabric, x.Name, filepath.Join(l.PinRoot, "fab", x.Name)); err != nil {
			return err
		}
	}
	return nil
}

// plug connects a host namespace to the bridge: a veth "eth0" in the host
// and "<role>" in the fabric, TX checksum offload off on both ends
// (TESTBED.md), addresses, a fixed MAC, and redirects ignored so every
// path stays the one the lab set up.
func (l *Lab) plug(role string, host *NS, v4, v6 netip.Addr) error {
	hostNS, err := netns.GetFromPath(host.Path)
	if err != nil {
		return err
	}
	defer hostNS.Close()
	if err := l.Fabric.Do(func() error {
		br, err := netlink.LinkByName("br0")
		if err != nil {
			return err
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: role, MasterIndex: br.Attrs().Index},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(int(hostNS)),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %s: %w", role, err)
		}
		return netlink.LinkSetUp(veth)
	}); err != nil {
		return err
	}
	if err := host.Sysctl(
		"net.ipv4.conf.all.accept_redirects", "0",
		"net.ipv6.conf.all.accept_redirects", "0",
		"net.ipv6.conf.default.accept_dad", "0",
		"net.ipv6.conf.eth0.accept_dad", "0",
	); err != nil {
		return err
	}
	if err := host.Do(func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetHardwareAddr(eth, macFor(v4)); err != nil {
			return err
		}
		for _, a := range []string{v4.String() + "/24", v6.String() + "/64"} {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			addr.Flags |= 0x02 // IFA_F_NODAD: the address is usable at once
			if err := netlink.AddrAdd(eth, addr); err != nil {
				return fmt.Errorf("address %s on %s: %w", a, host.Name, err)
			}
		}
		return netlink.LinkSetUp(eth)
	}); err != nil {
		return err
	}
	if _, err := host.Exec("ethtool", "-K", "eth0", "tx", "off"); err != nil {
		return err
	}
	_, err = l.Fabric.Exec("ethtool", "-K", role, "tx", "off")
	return err
}

func (l *Lab) startBird() error {
	conf, err := writeBirdConf(l.Dir, l.LBs)
	if err != nil {
		return err
	}
	ctl := filepath.Join(l.Dir, "bird.ctl")
	l.bird, err = startProcess(l.Router, "bird", filepath.Join(l.Dir, "bird.out"), l.opts.Detached,
		"bird", "-c", conf, "-s", ctl, "-P", filepath.Join(l.Dir, "bird.pid"), "-f")
	if err != nil {
		return err
	}
	l.Bird, err = dialBird(ctl, 10*time.Second)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, l.bird.Tail(20))
	}
	return nil
}

func (l *Lab) writeState(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.Dir, "lab.json"), b, 0o644)
}

// Down stops everything the lab started and removes it: processes,
// namespaces (and with them every veth and the bridge), pins, the lab
// directory. It keeps going past errors and returns them joined.
func (l *Lab) Down() error {
	var errs []error
	for _, x := range l.LBs {
		if x.conn != nil {
			x.conn.Close()
			x.conn = nil
		}
		if x.proc != nil {
			x.proc.Kill()
		}
	}
	for _, r := range l.Reals {
		if r.server != nil {
			r.server.Kill()
		}
	}
	l.Bird.close()
	if l.bird != nil {
		l.bird.Kill()
	}
	errs = append(errs, Remove(l.ID))
	return errors.Join(errs...)
}

// Remove tears down the lab with the given id, whether or not this
// process built it: every namespace vc<id>-*, the pins, the directory.
func Remove(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("bad lab id %q", id)
	}
	var errs []error
	names, _ := filepath.Glob("/run/netns/" + nsName(id, "*"))
	for _, p := range names {
		errs = append(errs, openNS(filepath.Base(p)).remove())
	}
	// Pinned links whose interface went with its namespace are defunct;
	// unpinning releases them.
	if err := os.RemoveAll(filepath.Join(lb.BPFFS, "vipcast-lab-"+id)); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(filepath.Join(StateRoot, id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Known lists the ids of labs with a directory under StateRoot.
func Known() []string {
	entries, _ := os.ReadDir(StateRoot)
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// Open returns a handle on a running lab that another process built (the
// lab command's `status`): namespaces, LBs, reals and BIRD, but no process
// handles, so it cannot stop or restart them.
func Open(id string) (*Lab, error) {
	dir := filepath.Join(StateRoot, id)
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", id, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab %s: %w", id, err)
	}
	l := &Lab{ID: id, Dir: dir, PinRoot: st.PinRoot, Bin: st.Bin, opts: Options{ID: id, Bin: st.Bin, Detached: true, Logf: func(string, ...any) {}}}
	l.describe()
	if bird, err := dialBird(filepath.Join(dir, "bird.ctl"), time.Second); err == nil {
		l.Bird = bird
	}
	return l, nil
}

// SetServeBin names the program Real.StartServer runs (`serve`), for a lab
// from Open.
func (l *Lab) SetServeBin(path string) { l.opts.ServeBin = path }

// Close releases what Open holds (the BIRD and API connections); the lab
// keeps running.
func (l *Lab) Close() {
	l.Bird.close()
	for _, x := range l.LBs {
		if x.conn != nil {
			x.conn.Close()
			x.conn = nil
		}
	}
}
