package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"vipcast/api"
	"vipcast/internal/testutil"
	"vipcast/lb"
)

// buildDaemon compiles vipcastd once per test binary.
func buildDaemon(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	bin := filepath.Join(t.TempDir(), "vipcastd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vipcastd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build vipcastd: %v\n%s", err, out)
	}
	return bin
}

type daemonRun struct {
	t      *testing.T
	ns     *testutil.NS
	bin    string
	cfg    string
	pins   string
	sock   string
	cmd    *exec.Cmd
	log    *strings.Builder
	client api.VipcastClient
	conn   *grpc.ClientConn
}

func (r *daemonRun) start() {
	r.t.Helper()
	r.log = &strings.Builder{}
	r.cmd = r.ns.Cmd(context.Background(), r.bin, "--config", r.cfg, "--pin-dir", r.pins)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(r.sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			r.stop()
			r.t.Fatalf("vipcastd did not create its socket within 15 s:\n%s", r.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+r.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		r.t.Fatal(err)
	}
	r.conn, r.client = conn, api.NewVipcastClient(conn)
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (r *daemonRun) stop() {
	r.t.Helper()
	if r.conn != nil {
		r.conn.Close()
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			r.t.Fatalf("vipcastd exited with %v:\n%s", err, r.log)
		}
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		r.t.Fatalf("vipcastd did not stop within 10 s of SIGTERM:\n%s", r.log)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

const testConfig = `interface = "eth0"
gateway_mac = "02:00:00:00:00:01"
lru_size = 10000
max_vips = 16
max_reals = 64
hc_forwarding = true

[api]
socket = "%SOCK%"
socket_group = ""

[metrics]
listen = "127.0.0.1:19641"

[health]
type = "none"

[[vip]]
address = "203.0.113.1"
port = 80
protocol = "tcp"

  [[vip.real]]
  address = "192.0.2.11"
  weight = 2

  [[vip.real]]
  address = "192.0.2.12"
`

func TestDaemonLifecycle(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := lb.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	id := testutil.RunID()
	lbNS, peer := testutil.NewNS(t, id, "lb"), testutil.NewNS(t, id, "peer")
	testutil.Veth(t, lbNS, "eth0", peer, "eth0")
	lbNS.MustExec(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")

	dir := t.TempDir()
	r := &daemonRun{
		t: t, ns: lbNS, bin: buildDaemon(t),
		cfg:  filepath.Join(dir, "vipcast.toml"),
		pins: filepath.Join(lb.BPFFS, "vipcast-test-"+id),
		sock: filepath.Join(dir, "vipcast.sock"),
	}
	t.Cleanup(func() { _ = lb.RemovePins(filepath.Join(r.pins, "eth0")); _ = os.Remove(r.pins) })
	writeConfig := func(body string) {
		if err := os.WriteFile(r.cfg, []byte(strings.ReplaceAll(body, "%SOCK%", r.sock)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(testConfig)

	r.start()
	vips, err := r.client.ListVIPs(ctx(t), &api.ListVIPsRequest{})
	if err != nil {
		t.Fatalf("ListVIPs: %v\n%s", err, r.log)
	}
	if len(vips.Vips) != 1 || len(vips.Vips[0].Reals) != 2 || vips.Vips[0].Reals[0].Weight != 2 {
		t.Fatalf("configured VIPs: %v", vips)
	}
	if out := lbNS.MustExec(t, "ip", "link", "show", "eth0"); !strings.Contains(string(out), "xdp") {
		t.Fatalf("no XDP program on eth0:\n%s", out)
	}

	// Metrics on the namespace's loopback, read from the data plane.
	scrape := string(lbNS.MustExec(t, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:19641/metrics"))
	for _, want := range []string{"vipcast_build_info{", `vipcast_vip_packets_total{vip="203.0.113.1:80/tcp"} 0`, "vipcast_gateway_mac_known 1"} {
		if !strings.Contains(scrape, want) {
			t.Fatalf("metrics lack %q:\n%s", want, scrape)
		}
	}

	// Live change through the API.
	key := &api.VIPKey{Address: "203.0.113.2", Port: 53, Protocol: "udp"}
	if _, err := r.client.AddVIP(ctx(t), &api.AddVIPRequest{Vip: &api.VIP{Key: key}}); err != nil {
		t.Fatal(err)
	}
	_, err = r.client.AddReal(ctx(t), &api.AddRealRequest{Vip: key, Real: &api.Real{Address: "192.0.2.13", Weight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.client.AddVIP(ctx(t), &api.AddVIPRequest{Vip: &api.VIP{Key: key}})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "vip 203.0.113.2:53/udp: already exists") {
		t.Fatalf("duplicate VIP: %v", err)
	}
	v6 := &api.VIPKey{Address: "2001:db8:f00::1", Port: 443, Protocol: "tcp"}
	if _, err := r.client.AddVIP(ctx(t), &api.AddVIPRequest{Vip: &api.VIP{Key: v6}}); err != nil {
		t.Fatal(err)
	}
	_, err = r.client.AddReal(ctx(t), &api.AddRealRequest{Vip: v6, Real: &api.Real{Address: "192.0.2.11", Weight: 1}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "an IPv6 VIP needs IPv6 reals") {
		t.Fatalf("v6 VIP with v4 real: %v", err)
	}

	// A bad file is refused whole; the running state stays.
	writeConfig(testConfig + "\n[[vip]]\naddress = \"203.0.113.9\"\nport = 80\nprotocol = \"tcp\"\nbogus = 1\n")
	_, err = r.client.Reload(ctx(t), &api.ReloadRequest{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("bad reload: %v", err)
	}
	vips, _ = r.client.ListVIPs(ctx(t), &api.ListVIPsRequest{})
	if len(vips.Vips) != 3 {
		t.Fatalf("after a refused reload: %d VIPs, want the 3 running ones", len(vips.Vips))
	}
	// A good reload returns to the file: live additions go.
	writeConfig(testConfig)
	rel, err := r.client.Reload(ctx(t), &api.ReloadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rel.Changes, "\n"); !strings.Contains(got, "vip 203.0.113.2:53/udp removed") {
		t.Fatalf("reload changes:\n%s", got)
	}

	// SIGTERM leaves the data plane attached; the next run adopts it.
	r.stop()
	if out := lbNS.MustExec(t, "ip", "link", "show", "eth0"); !strings.Contains(string(out), "xdp") {
		t.Fatalf("XDP detached by a stop:\n%s", out)
	}
	r.start()
	if !strings.Contains(r.log.String(), "adopted the data plane") {
		t.Fatalf("restart did not adopt:\n%s", r.log)
	}
	vips, err = r.client.ListVIPs(ctx(t), &api.ListVIPsRequest{})
	if err != nil || len(vips.Vips) != 1 {
		t.Fatalf("after restart: %v %v", vips, err)
	}
	r.stop()

	// --cleanup detaches and removes.
	out, err := r.ns.Exec(r.bin, "--config", r.cfg, "--pin-dir", r.pins, "--cleanup")
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(string(lbNS.MustExec(t, "ip", "link", "show", "eth0")), "xdp") {
		if time.Now().After(deadline) {
			t.Fatal("XDP still attached 5 s after --cleanup")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDrainStopsTheDaemon(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := lb.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	id := testutil.RunID()
	lbNS, peer := testutil.NewNS(t, id, "lb"), testutil.NewNS(t, id, "peer")
	testutil.Veth(t, lbNS, "eth0", peer, "eth0")
	dir := t.TempDir()
	r := &daemonRun{
		t: t, ns: lbNS, bin: buildDaemon(t),
		cfg:  filepath.Join(dir, "vipcast.toml"),
		pins: filepath.Join(lb.BPFFS, "vipcast-test-"+id),
		sock: filepath.Join(dir, "vipcast.sock"),
	}
	t.Cleanup(func() { _ = lb.RemovePins(filepath.Join(r.pins, "eth0")); _ = os.Remove(r.pins) })
	body := strings.ReplaceAll(testConfig, "%SOCK%", r.sock)
	body = strings.Replace(body, "[metrics]", "[bgp]\ndrain_time = \"300ms\"\n\n[metrics]", 1)
	if err := os.WriteFile(r.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	start := time.Now()
	resp, err := r.client.Drain(ctx(t), &api.DrainRequest{})
	if err != nil {
		t.Fatalf("Drain: %v\n%s", err, r.log)
	}
	if len(resp.Withdrawn) != 0 {
		t.Errorf("withdrawn %v with BGP off", resp.Withdrawn)
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("vipcastd exited with %v after drain:\n%s", err, r.log)
		}
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Fatalf("stopped %s after drain, before drain_time (300ms)", took)
		}
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		t.Fatalf("vipcastd still running 10 s after drain:\n%s", r.log)
	}
	r.conn.Close()
	if out := lbNS.MustExec(t, "ip", "link", "show", "eth0"); !strings.Contains(string(out), "xdp") {
		t.Fatalf("drain detached the data plane:\n%s", out)
	}
}
