package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"vipcast/internal/testutil"
	"vipcast/lb"
)

// The leak test runs vipcastd in-process, in a child copy of the test
// binary started inside a network namespace (every thread of the daemon
// must be in it), and compares goroutines and open files before the
// daemon started and after it stopped.
const leakChildEnv = "VIPCAST_LEAK_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(leakChildEnv); cfg != "" {
		os.Exit(leakChild(cfg))
	}
	// The API access test's client, run as an unprivileged user.
	if sock := os.Getenv(accessChildEnv); sock != "" {
		os.Exit(accessChild(sock))
	}
	os.Exit(m.Run())
}

type leakReport struct {
	GoroutinesBefore, GoroutinesAfter int
	FDsBefore, FDsAfter               int
	Stacks                            string
	Err                               string
}

func openFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

func leakChild(args string) int {
	cfgPath, pins, _ := strings.Cut(args, "|")
	var rep leakReport
	// Let the runtime's own goroutines settle first.
	time.Sleep(100 * time.Millisecond)
	rep.GoroutinesBefore, rep.FDsBefore = runtime.NumGoroutine(), openFDs()
	for round := range 2 { // twice: the second run adopts the first's pins
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{ConfigPath: cfgPath, PinRoot: pins, Logger: slog.New(slog.DiscardHandler), Ready: func() { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-done:
			rep.Err = fmt.Sprintf("round %d: Run ended before ready: %v", round, err)
		case <-time.After(15 * time.Second):
			rep.Err = fmt.Sprintf("round %d: not ready within 15 s", round)
		}
		time.Sleep(300 * time.Millisecond) // let checks run
		cancel()
		select {
		case err := <-done:
			if err != nil && rep.Err == "" {
				rep.Err = fmt.Sprintf("round %d: Run: %v", round, err)
			}
		case <-time.After(15 * time.Second):
			rep.Err = fmt.Sprintf("round %d: Run did not return within 15 s of cancel", round)
		}
	}
	// Goroutines wind down asynchronously (gRPC, timers): wait, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > rep.GoroutinesBefore && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rep.GoroutinesAfter, rep.FDsAfter = runtime.NumGoroutine(), openFDs()
	if rep.GoroutinesAfter > rep.GoroutinesBefore {
		buf := make([]byte, 1<<20)
		rep.Stacks = string(buf[:runtime.Stack(buf, true)])
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

func TestDaemonLeavesNoGoroutinesOrFiles(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := lb.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	id := testutil.RunID()
	lbNS, peer := testutil.NewNS(t, id, "lb"), testutil.NewNS(t, id, "peer")
	testutil.Veth(t, lbNS, "eth0", peer, "eth0")
	lbNS.MustExec(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	peer.MustExec(t, "ip", "addr", "add", "192.0.2.11/24", "dev", "eth0")
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	cfg := filepath.Join(dir, "vipcast.toml")
	pins := filepath.Join(lb.BPFFS, "vipcast-test-"+id)
	t.Cleanup(func() { _ = lb.RemovePins(filepath.Join(pins, "eth0")); _ = os.Remove(pins) })
	// TCP checks through the tunnel run (and fail: nothing serves the
	// VIP), so checker goroutines and marked sockets come and go.
	body := strings.ReplaceAll(testConfig, "%SOCK%", sock)
	body = strings.Replace(body, "[health]\ntype = \"none\"", "[health]\ntype = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"50ms\"", 1)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := lbNS.Cmd(context.Background(), exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), leakChildEnv+"="+cfg+"|"+pins)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var rep leakReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("child report %q: %v", out, err)
	}
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	t.Logf("goroutines %d -> %d, open files %d -> %d over two start/stop rounds",
		rep.GoroutinesBefore, rep.GoroutinesAfter, rep.FDsBefore, rep.FDsAfter)
	if rep.GoroutinesAfter > rep.GoroutinesBefore {
		t.Errorf("goroutines leaked: %d -> %d\n%s", rep.GoroutinesBefore, rep.GoroutinesAfter, rep.Stacks)
	}
	if rep.FDsAfter > rep.FDsBefore {
		t.Errorf("file descriptors leaked: %d -> %d", rep.FDsBefore, rep.FDsAfter)
	}
}
