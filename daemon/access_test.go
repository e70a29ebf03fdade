package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"vipcast/api"
	"vipcast/bgp"
	"vipcast/config"
	"vipcast/internal/testutil"
	"vipcast/internal/version"
	"vipcast/lb"
)

// Access control: the API socket lets in root and the socket's group only,
// checked with a real unprivileged user; and by default nothing listens
// beyond loopback.

// accessChildEnv makes the test binary (see TestMain) a client that dials
// the API socket named by the variable, calls GetVersion, and prints an
// accessReport. The tests run it as an unprivileged user.
const accessChildEnv = "VIPCAST_ACCESS_CHILD"

type accessReport struct {
	UID, GID   int
	Groups     []int
	DialErr    string
	DialEACCES bool
	RPCErr     string
	Version    string
}

func accessChild(sock string) int {
	rep := accessReport{UID: os.Getuid(), GID: os.Getgid()}
	rep.Groups, _ = os.Getgroups()
	if c, err := net.Dial("unix", sock); err != nil {
		rep.DialErr, rep.DialEACCES = err.Error(), errors.Is(err, syscall.EACCES)
	} else {
		c.Close()
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		rep.RPCErr = err.Error()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := api.NewVipcastClient(conn).GetVersion(ctx, &api.GetVersionRequest{})
		cancel()
		conn.Close()
		if err != nil {
			rep.RPCErr = err.Error()
		} else {
			rep.Version = resp.GetVersion()
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

// socketGroup makes sure the group exists; it is removed at cleanup only
// if this test created it.
func socketGroup(t *testing.T, name string) *user.Group {
	t.Helper()
	if g, err := user.LookupGroup(name); err == nil {
		return g
	}
	testutil.MustRun(t, "groupadd", "-f", name)
	t.Cleanup(func() { _ = exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// throwawayUser creates a system user without home or shell, deleted (with
// its private group) at cleanup.
func throwawayUser(t *testing.T) *user.User {
	t.Helper()
	name := "vctest" + testutil.RunID()
	testutil.MustRun(t, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name)
	t.Cleanup(func() {
		_ = exec.Command("userdel", name).Run()
		if _, err := user.LookupGroup(name); err == nil {
			_ = exec.Command("groupdel", name).Run()
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// runAs runs the copied test binary as the user, with the user's groups as
// /etc/group has them now (what a login would get).
func runAs(t *testing.T, bin string, name, sock string) accessReport {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	var groups []uint32
	for _, g := range gids {
		n, _ := strconv.Atoi(g)
		groups = append(groups, uint32(n))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = []string{"PATH=/usr/bin:/bin", accessChildEnv + "=" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as %s: %v\n%s%s", name, err, out, stderr.String())
	}
	var rep accessReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("client report %q: %v", out, err)
	}
	if rep.UID != uid || rep.UID == 0 {
		t.Fatalf("client ran as uid %d, want %d", rep.UID, uid)
	}
	return rep
}

func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAPISocketRefusesUsersOutsideItsGroup(t *testing.T) {
	testutil.RequirePrivileged(t)
	const group = "vipcast"
	grp := socketGroup(t, group)
	u := throwawayUser(t)

	// A directory everyone may enter: the socket's own mode must be what
	// refuses, not the path to it. The test binary is copied there, since
	// go test's build directory is private to root.
	dir, err := os.MkdirTemp("", "vipcast-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "daemon.test")
	copyExecutable(t, bin)
	sock := filepath.Join(dir, "run", "vipcast.sock")

	l, err := listenAPI(config.API{Socket: sock, SocketMode: 0o660, SocketGroup: group},
		&apiServer{dp: newRecordingDataplane(true)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.close() })

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 || strconv.Itoa(int(st.Gid)) != grp.Gid || st.Uid != 0 {
		t.Fatalf("socket %s: mode %s, owner %d:%d; want a socket, 0660, root:%s (%s)", sock, fi.Mode(), st.Uid, st.Gid, group, grp.Gid)
	}

	// Outside the group: the kernel refuses the connection.
	rep := runAs(t, bin, u.Username, sock)
	t.Logf("as %s (uid %d, groups %v): dial %q, call %q", u.Username, rep.UID, rep.Groups, rep.DialErr, rep.RPCErr)
	if !rep.DialEACCES || !strings.Contains(rep.DialErr, "permission denied") {
		t.Fatalf("user outside %s: dial error %q, want permission denied", group, rep.DialErr)
	}
	if rep.RPCErr == "" || rep.Version != "" {
		t.Fatalf("user outside %s got an answer: version %q", group, rep.Version)
	}

	// The same user, once a member of the group, is let in.
	testutil.MustRun(t, "usermod", "--append", "--groups", group, u.Username)
	rep = runAs(t, bin, u.Username, sock)
	t.Logf("as %s (uid %d, groups %v): dial %q, call %q, version %q", u.Username, rep.UID, rep.Groups, rep.DialErr, rep.RPCErr, rep.Version)
	if rep.DialErr != "" || rep.RPCErr != "" || rep.Version != version.String() {
		t.Fatalf("member of %s: dial %q, call %q, version %q; want version %q", group, rep.DialErr, rep.RPCErr, rep.Version, version.String())
	}
}

// The defaults bind nothing beyond loopback: the API is a unix socket for
// root and the vipcast group, metrics and GoBGP's API are on loopback, and
// BGP accepts no incoming sessions.
func TestDefaultsListenOnLoopbackOnly(t *testing.T) {
	for name, c := range map[string]*config.Config{"config.Default()": config.Default(), "etc/vipcast.toml": shippedConfig(t)} {
		if !filepath.IsAbs(c.API.Socket) || c.API.SocketMode != 0o660 || c.API.SocketGroup != "vipcast" {
			t.Errorf("%s: api socket %q mode %o group %q, want an absolute unix socket path, 0660, vipcast", name, c.API.Socket, c.API.SocketMode, c.API.SocketGroup)
		}
		if l := c.Metrics.Listen; l.IsValid() && !l.Addr().IsLoopback() || c.Metrics.AllowRemote {
			t.Errorf("%s: metrics listen %s (allow_remote %v), want loopback", name, l, c.Metrics.AllowRemote)
		}
		if l := c.BGP.APIListen; l.Unix == "" && l.TCP.IsValid() && !l.TCP.Addr().IsLoopback() || c.BGP.AllowRemoteAPI {
			t.Errorf("%s: bgp api_listen %s (allow_remote_api %v), want loopback or unix", name, l, c.BGP.AllowRemoteAPI)
		}
		if c.BGP.ListenPort != 0 {
			t.Errorf("%s: bgp listen_port %d, want 0 (no incoming sessions)", name, c.BGP.ListenPort)
		}
		// What the speaker is handed.
		b := bgpConfig(c, false)
		if b.ListenPort > 0 {
			t.Errorf("%s: speaker listen port %d", name, b.ListenPort)
		}
		if b.APIListen != bgp.APIOff && !strings.HasPrefix(b.APIListen, "unix://") {
			if ap, err := netip.ParseAddrPort(b.APIListen); err != nil || !ap.Addr().IsLoopback() {
				t.Errorf("%s: speaker API listen %q, want loopback", name, b.APIListen)
			}
		}
	}
}

func shippedConfig(t *testing.T) *config.Config {
	t.Helper()
	data, err := os.ReadFile("../etc/vipcast.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("vipcast.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A daemon running with the default listen settings (BGP on, with a peer;
// health checks on) has no listening socket outside loopback in its network
// namespace.
func TestDaemonListensOnLoopbackOnly(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := lb.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	id := testutil.RunID()
	lbNS, peer := testutil.NewNS(t, id, "lb"), testutil.NewNS(t, id, "peer")
	testutil.Veth(t, lbNS, "eth0", peer, "eth0")
	lbNS.MustExec(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	lbNS.MustExec(t, "ip", "addr", "add", "2001:db8:0:1::2/64", "dev", "eth0", "nodad")
	// The peer is the default gateway: its MAC is found as by default
	// (gateway_mac = "auto": route, neighbour, ARP).
	peer.MustExec(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
	lbNS.MustExec(t, "ip", "route", "add", "default", "via", "192.0.2.1")

	dir := t.TempDir()
	r := &daemonRun{
		t: t, ns: lbNS, bin: buildDaemon(t),
		cfg:  filepath.Join(dir, "vipcast.toml"),
		pins: filepath.Join(lb.BPFFS, "vipcast-test-"+id),
		sock: filepath.Join(dir, "vipcast.sock"),
	}
	t.Cleanup(func() { _ = lb.RemovePins(filepath.Join(r.pins, "eth0")); _ = os.Remove(r.pins) })
	// Only what must be given is: interface, the socket path (not to
	// clash with a real vipcastd), table sizes small enough for a test,
	// BGP identity and a peer. Listen settings, gateway resolution and
	// health checks are the defaults.
	body := fmt.Sprintf(`interface = "eth0"
lru_size = 10000
max_vips = 16
max_reals = 64

[api]
socket = %q

[bgp]
asn = 65001
router_id = "192.0.2.2"

[[bgp.peer]]
address = "192.0.2.1"
asn = 65000

[[vip]]
address = "203.0.113.1"
port = 80
protocol = "tcp"

  [[vip.real]]
  address = "192.0.2.11"
`, r.sock)
	if err := os.WriteFile(r.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	defer r.stop()
	if _, err := r.client.GetVersion(ctx(t), &api.GetVersionRequest{}); err != nil {
		t.Fatalf("GetVersion: %v\n%s", err, r.log)
	}

	// GoBGP's API comes up after ours: wait for it, so the check below
	// sees the daemon with everything started.
	var sockets []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		sockets = listening(t, lbNS)
		if strings.Contains(strings.Join(sockets, "\n"), "127.0.0.1:50051") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GoBGP's API never listened on 127.0.0.1:50051; listening:\n%s\nlog:\n%s", strings.Join(sockets, "\n"), r.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // checks and BGP connection attempts run meanwhile
	sockets = listening(t, lbNS)
	t.Logf("listening in the daemon's namespace:\n%s", strings.Join(sockets, "\n"))
	for _, s := range sockets {
		local, err := localAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		if !local.IsLoopback() {
			t.Errorf("listening on %s, outside loopback: %s", local, s)
		}
	}
}

// listening lists the TCP listeners and unconnected UDP sockets of the
// namespace (`ss -Hltunp`). Raw and packet sockets (ARP and NDP probes of
// the gateway resolution) accept no connections and are left out.
func listening(t *testing.T, ns *testutil.NS) []string {
	t.Helper()
	out := ns.MustExec(t, "ss", "-H", "-l", "-t", "-u", "-n", "-p")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// localAddr reads the local address of an ss line: "Netid State Recv-Q
// Send-Q Local:Port Peer:Port Process", the address as 127.0.0.1,
// [::1], *, 0.0.0.0%lo ...
func localAddr(line string) (netip.Addr, error) {
	f := strings.Fields(line)
	if len(f) < 6 {
		return netip.Addr{}, fmt.Errorf("ss line %q: too few fields", line)
	}
	local := f[4]
	i := strings.LastIndex(local, ":")
	if i < 0 {
		return netip.Addr{}, fmt.Errorf("ss line %q: local address %q without a port", line, local)
	}
	host := strings.Trim(local[:i], "[]")
	if h, _, ok := strings.Cut(host, "%"); ok {
		host = h
	}
	if host == "*" {
		return netip.IPv6Unspecified(), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ss line %q: local address %q: %v", line, local, err)
	}
	return a, nil
}

func TestLocalAddr(t *testing.T) {
	for line, want := range map[string]string{
		`tcp LISTEN 0 4096 127.0.0.1:50051 0.0.0.0:* users:(("vipcastd",pid=1,fd=3))`: "127.0.0.1",
		`tcp LISTEN 0 4096 [::1]:9641 [::]:*`:                                         "::1",
		`tcp LISTEN 0 4096 *:179 *:*`:                                                 "::",
		`tcp LISTEN 0 4096 [::]:179 [::]:*`:                                           "::",
		`udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:*`:                                   "127.0.0.53",
		`udp UNCONN 0 0 0.0.0.0%eth0:68 0.0.0.0:*`:                                    "0.0.0.0",
	} {
		got, err := localAddr(line)
		if err != nil || got != netip.MustParseAddr(want) {
			t.Errorf("localAddr(%q) = %s, %v; want %s", line, got, err, want)
		}
	}
}
