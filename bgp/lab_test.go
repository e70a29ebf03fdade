package bgp

// The netns lab for the interop tests.
//
// Why a helper process: GoBGP opens its sockets (API listener, BGP
// listener, outgoing sessions) later, on goroutines of its own, and a
// socket belongs to the network namespace of the OS thread that creates
// it. Entering a namespace with setns(2) from a locked thread (NS.Do)
// affects that one thread only, so GoBGP's dials would run in the host
// namespace. Instead the test binary re-executes itself under
// `nsenter --net=/run/netns/<lb>`: the whole process, every thread, lives
// in the LB namespace, exactly as vipcastd does in production. TestMain
// recognises the child by an environment variable and runs helperMain
// instead of the tests; the parent drives it with JSON lines on stdin and
// reads replies prefixed with "@@" on stdout (its logs go to stderr).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"vipcast/internal/testutil"
)

const helperEnv = "VIPCAST_BGP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

type helperReq struct {
	Op     string       `json:"op"` // start, announce, withdraw, peers, announced, rib, events, reconfigure, stop
	Config *Config      `json:"config,omitempty"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
	Attrs  Attrs        `json:"attrs"`
}

type helperResp struct {
	Err      string       `json:"err,omitempty"`
	Took     string       `json:"took,omitempty"`
	Peers    []PeerStatus `json:"peers,omitempty"`
	Routes   []Route      `json:"routes,omitempty"`
	RIB      []string     `json:"rib,omitempty"` // every prefix in our global RIB, "prefix local|peer"
	Events   []PeerEvent  `json:"events,omitempty"`
	Received uint64       `json:"received,omitempty"`
}

// helperMain runs a Speaker and obeys the parent until stdin closes.
func helperMain(in io.Reader, out io.Writer) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var s *Speaker
	var evMu sync.Mutex
	var events []PeerEvent
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var req helperReq
		var resp helperResp
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Err = err.Error()
		} else {
			start := time.Now()
			err := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				if req.Op != "start" && s == nil {
					return fmt.Errorf("not started")
				}
				switch req.Op {
				case "start":
					var err error
					if s, err = New(*req.Config, logger); err != nil {
						return err
					}
					ch := s.Watch(context.Background())
					go func() {
						for ev := range ch {
							evMu.Lock()
							events = append(events, ev)
							evMu.Unlock()
						}
					}()
					return s.Start(ctx)
				case "announce":
					return s.Announce(req.Prefix, req.Attrs)
				case "withdraw":
					return s.Withdraw(req.Prefix)
				case "peers":
					resp.Peers = s.Peers()
				case "announced":
					resp.Routes = s.Announced()
				case "reconfigure":
					return s.Reconfigure(ctx, *req.Config)
				case "stop":
					return s.Stop(ctx)
				case "events":
					evMu.Lock()
					resp.Events = events
					events = nil
					evMu.Unlock()
				case "rib":
					for _, fam := range []*api.Family{familyV4, familyV6} {
						err := s.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
							for _, p := range d.Paths {
								from := "local"
								if p.NeighborIp != "" && p.NeighborIp != "<nil>" {
									from = "peer " + p.NeighborIp
								}
								resp.RIB = append(resp.RIB, d.Prefix+" "+from)
							}
						})
						if err != nil {
							return err
						}
					}
					for _, p := range s.Peers() {
						resp.Received += p.PrefixesReceived
					}
				default:
					return fmt.Errorf("unknown op %q", req.Op)
				}
				return nil
			}()
			resp.Took = time.Since(start).String()
			if err != nil {
				resp.Err = err.Error()
			}
		}
		b, _ := json.Marshal(resp)
		fmt.Fprintf(out, "@@%s\n", b)
	}
	return 0
}

// helper is the parent's handle on a helper process in a namespace.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	logs  *syncBuffer
	mu    sync.Mutex
}

func startHelper(t *testing.T, ns *testutil.NS) *helper {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Cmd(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	h := &helper{t: t, cmd: cmd, lines: make(chan string, 16), logs: &syncBuffer{}}
	cmd.Stderr = h.logs
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start helper in %s: %v", ns.Name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "@@"); ok {
				h.lines <- l
			}
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		h.stdin.Close()
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("helper log (%s):\n%s", ns.Name, h.logs.String())
		}
	})
	return h
}

// call sends one request and waits (bounded) for its reply.
func (h *helper) call(req helperReq) helperResp {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := fmt.Fprintf(h.stdin, "%s\n", b); err != nil {
		h.t.Fatalf("helper %s: write: %v", req.Op, err)
	}
	select {
	case l, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper %s: helper exited\n%s", req.Op, h.logs.String())
		}
		var resp helperResp
		if err := json.Unmarshal([]byte(l), &resp); err != nil {
			h.t.Fatalf("helper %s: reply %q: %v", req.Op, l, err)
		}
		return resp
	case <-time.After(30 * time.Second):
		h.t.Fatalf("helper %s: no reply in 30s", req.Op)
	}
	return helperResp{}
}

// must is call that fails the test on an error reply.
func (h *helper) must(req helperReq) helperResp {
	h.t.Helper()
	resp := h.call(req)
	if resp.Err != "" {
		h.t.Fatalf("helper %s %v: %s", req.Op, req.Prefix, resp.Err)
	}
	return resp
}

func (h *helper) peer(addr string) PeerStatus {
	h.t.Helper()
	for _, p := range h.must(helperReq{Op: "peers"}).Peers {
		if p.Address.String() == addr {
			return p
		}
	}
	return PeerStatus{State: "absent"}
}

// kill ends the helper without letting it stop the speaker: the kernel
// closes its sessions with no NOTIFICATION, like a crashed or restarted
// daemon.
func (h *helper) kill() {
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
}

// lab is a router namespace running BIRD and an LB namespace, joined by a
// veth, with the TESTBED addresses.
type lab struct {
	rtr, lb *testutil.NS
	dir     string
	bird    *birdCtl
}

const (
	rtrV4 = "192.0.2.1"
	rtrV6 = "2001:db8:0:1::1"
	lbV4  = "192.0.2.2"
	lbV6  = "2001:db8:0:1::2"
)

func newLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequirePrivileged(t)
	for _, bin := range []string{"bird", "birdc", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (Debian package bird2 / util-linux)", bin)
			}
			t.Skipf("%s not installed (Debian package bird2 / util-linux)", bin)
		}
	}
	id := testutil.RunID()
	l := &lab{rtr: testutil.NewNS(t, id, "rtr"), lb: testutil.NewNS(t, id, "lb"), dir: t.TempDir()}
	testutil.Veth(t, l.rtr, "eth0", l.lb, "eth0")
	l.rtr.MustExec(t, "ip", "addr", "add", rtrV4+"/24", "dev", "eth0")
	l.rtr.MustExec(t, "ip", "-6", "addr", "add", rtrV6+"/64", "dev", "eth0", "nodad")
	l.lb.MustExec(t, "ip", "addr", "add", lbV4+"/24", "dev", "eth0")
	l.lb.MustExec(t, "ip", "-6", "addr", "add", lbV6+"/64", "dev", "eth0", "nodad")
	return l
}

// birdOptions shape the router's BIRD configuration.
type birdOptions struct {
	password string // on the IPv4 session
}

// startBIRD writes bird.conf and runs BIRD in the router namespace. BIRD
// exports two routes of its own to us (which our import policy must drop)
// and imports everything we send.
func (l *lab) startBIRD(t *testing.T, o birdOptions) {
	t.Helper()
	pw := ""
	if o.password != "" {
		pw = fmt.Sprintf("password %q;", o.password)
	}
	conf := fmt.Sprintf(`
log "%[1]s/bird.log" all;
debug protocols { states, routes };
router id %[2]s;
protocol device { scan time 2; }
protocol static s4 { ipv4; route 198.51.100.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:beef::/48 blackhole; }
template bgp lb {
	local as 65001;
	hold time 9; keepalive time 3;
	connect delay time 1; connect retry time 2; error wait time 1, 4;
	graceful restart on;
}
protocol bgp lb4 from lb {
	neighbor %[4]s as 65000; source address %[2]s; %[6]s
	ipv4 { import all; export all; };
}
protocol bgp lb6 from lb {
	neighbor %[5]s as 65000; source address %[3]s;
	ipv6 { import all; export all; };
}
`, l.dir, rtrV4, rtrV6, lbV4, lbV6, pw)
	if err := os.WriteFile(filepath.Join(l.dir, "bird.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	l.rtr.Start(t, "bird", "-c", filepath.Join(l.dir, "bird.conf"), "-s", filepath.Join(l.dir, "bird.ctl"), "-P", filepath.Join(l.dir, "bird.pid"), "-f")
	ctl := filepath.Join(l.dir, "bird.ctl")
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l.bird, err = dialBird(ctl); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD control socket %s: %v", ctl, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { l.bird.close() })
}

// birdc runs the real birdc against the lab's BIRD (the control socket is
// a file, so no namespace is needed).
func (l *lab) birdc(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", filepath.Join(l.dir, "bird.ctl")}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("birdc %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (l *lab) birdLog(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(l.dir, "bird.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// birdCtl speaks BIRD's control protocol directly: one connection, no
// process per query, so route polling resolves well below a millisecond.
type birdCtl struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

func dialBird(path string) (*birdCtl, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, err
	}
	b := &birdCtl{conn: c, r: bufio.NewReader(c)}
	if _, err := b.read(); err != nil { // greeting "0001 BIRD ... ready."
		c.Close()
		return nil, err
	}
	return b, nil
}

func (b *birdCtl) close() { b.conn.Close() }

// read collects one reply: lines "NNNN-text" and " text" continue it, a
// line "NNNN text" ends it.
func (b *birdCtl) read() (string, error) {
	_ = b.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sb strings.Builder
	for {
		line, err := b.r.ReadString('\n')
		if err != nil {
			return sb.String(), err
		}
		sb.WriteString(line)
		if len(line) >= 5 && line[4] == ' ' && line[0] >= '0' && line[0] <= '9' {
			return sb.String(), nil
		}
	}
}

func (b *birdCtl) query(cmd string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := fmt.Fprintf(b.conn, "%s\n", cmd); err != nil {
		return "", err
	}
	return b.read()
}

// hasRoute reports whether BIRD's table holds prefix (exact match).
func (b *birdCtl) hasRoute(prefix string) (bool, error) {
	out, err := b.query("show route " + prefix)
	if err != nil {
		return false, err
	}
	return strings.Contains(out, prefix), nil
}

// pollBird waits (bounded) until hasRoute(prefix) == want and returns how
// long that took.
func pollBird(t *testing.T, b *birdCtl, prefix string, want bool, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, err := b.hasRoute(prefix)
		if err != nil {
			t.Fatalf("BIRD query: %v", err)
		}
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("BIRD: route %s present=%v, want %v after %s", prefix, got, want, d)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// birdProtoState returns BIRD's state column for a protocol ("Established",
// "Active", "Connect", ...).
func (l *lab) birdProtoState(t *testing.T, proto string) string {
	t.Helper()
	out, err := l.bird.query("show protocols " + proto)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimLeft(line, "0123456789- "))
		if len(f) >= 6 && f[0] == proto {
			return f[len(f)-1]
		}
	}
	return "?"
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// labConfig is the LB's speaker config for the lab: one IPv4 and one IPv6
// session to BIRD, API on the default loopback address inside the LB
// namespace.
func labConfig() Config {
	return Config{
		ASN:      65000,
		RouterID: netip.MustParseAddr(lbV4),
		Peers: []Peer{
			{Address: netip.MustParseAddr(rtrV4), ASN: 65001, Description: "rtr v4", HoldTime: 9 * time.Second, ConnectRetry: time.Second},
			{Address: netip.MustParseAddr(rtrV6), ASN: 65001, Description: "rtr v6", HoldTime: 9 * time.Second, ConnectRetry: time.Second},
		},
		Communities:      []string{"65000:100"},
		LargeCommunities: []string{"65000:0:1"},
	}
}
