// Package e2e runs vipcast's end-to-end scenarios (issue 8) in the netns
// lab of test/lab: one lab for the whole package, built on first use,
// reset to LB1's default configuration before every scenario, and torn
// down when the tests end. They need root; see test/lab for the topology.
package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vipcast/api"
	"vipcast/internal/testutil"
	"vipcast/test/lab"
)

var (
	labOnce sync.Once
	theLab  *lab.Lab
	labErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theLab != nil && os.Getenv("VIPCAST_E2E_KEEP") != "" {
		fmt.Fprintf(os.Stderr, "e2e: VIPCAST_E2E_KEEP is set: lab %s stays up (binaries in %s); remove it with `go run ./test/lab/cmd down %s`\n", theLab.ID, binDir, theLab.ID)
		theLab.Close()
		os.Exit(code)
	}
	if theLab != nil {
		if err := theLab.Down(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: lab teardown: %v\n", err)
			code = max(code, 1)
		}
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// moduleRoot is the directory of go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildBinaries compiles vipcastd, vipcast and the lab command once.
func buildBinaries() (string, error) {
	dir, err := os.MkdirTemp("", "vipcast-e2e-bin-")
	if err != nil {
		return "", err
	}
	for _, b := range []struct{ out, pkg string }{
		{lab.DaemonBin, "./cmd/vipcastd"},
		{lab.CLIBin, "./cmd/vipcast"},
		{lab.LabBin, "./test/lab/cmd"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			return dir, fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir, nil
}

// setup returns the shared lab, reset to its default state: every real's
// server running, LB1 running with DefaultConfig and every VIP routed,
// LB2 stopped.
func setup(t *testing.T) *lab.Lab {
	t.Helper()
	testutil.RequirePrivileged(t)
	labOnce.Do(func() {
		start := time.Now()
		if binDir, labErr = buildBinaries(); labErr != nil {
			return
		}
		// A lab kept for inspection keeps its daemons running too.
		keep := os.Getenv("VIPCAST_E2E_KEEP") != ""
		theLab, labErr = lab.Up(context.Background(), lab.Options{Bin: binDir, LBs: 1, Detached: keep, Logf: t.Logf})
		if labErr == nil {
			t.Logf("lab %s up (binaries built and topology ready) in %s", theLab.ID, time.Since(start).Round(time.Millisecond))
		}
	})
	if labErr != nil {
		t.Fatalf("lab: %v", labErr)
	}
	l := theLab
	start := time.Now()
	ctx := bounded(t, 30*time.Second)
	for _, r := range l.Reals {
		if err := r.StartServer(); err != nil {
			t.Fatal(err)
		}
	}
	lb2 := l.LBs[1]
	if lb2.Running() { // a scenario that failed before its own cleanup
		if err := lb2.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := lb2.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	lb1 := l.LBs[0]
	if !lb1.Running() {
		if err := lb1.WriteConfig(lab.DefaultConfig()); err != nil {
			t.Fatal(err)
		}
		if err := lb1.Start(); err != nil {
			t.Fatal(err)
		}
	} else if _, err := lb1.Apply(ctx, lab.DefaultConfig()); err != nil {
		t.Fatalf("reset LB1's configuration: %v", err)
	}
	if err := lb1.WaitRouted(ctx, lab.DefaultVIPs(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Every scenario starts with LB1's BGP sessions up (one before may
	// have restarted the daemon or reset a session).
	waitFor(t, 20*time.Second, 10*time.Millisecond, "LB1's BGP sessions up", func() (bool, string) {
		v4, v6 := l.Bird.ProtocolState("lb1v4"), l.Bird.ProtocolState("lb1v6")
		return v4 == "Established" && v6 == "Established", "BIRD: lb1v4 " + v4 + ", lb1v6 " + v6
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vipcastd on lb1, last lines:\n%s", lb1.Process().Tail(25))
			if lb2.Process() != nil {
				t.Logf("vipcastd on lb2, last lines:\n%s", lb2.Process().Tail(25))
			}
		}
	})
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Logf("lab reset in %s", d.Round(time.Millisecond))
	}
	return l
}

// bounded is a context that ends after d or with the test.
func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every `every` until it holds, and returns how long
// that took; after timeout it fails the test with what cond last said.
func waitFor(t *testing.T, timeout, every time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s (%s)", what, timeout, why)
		}
		time.Sleep(every)
	}
}

func ap(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }

func prefixOf(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

// stats reads an LB's counters.
func stats(t *testing.T, x *lab.LB) *api.GetStatsResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := x.API().GetStats(ctx, &api.GetStatsRequest{})
	if err != nil {
		t.Fatalf("%s: GetStats: %v", x.Name, err)
	}
	return s
}

// vipPackets is the packet count of one VIP in a stats answer.
func vipPackets(s *api.GetStatsResponse, vip lab.VIPCfg) uint64 {
	for _, v := range s.GetVips() {
		k := v.GetKey()
		if k.GetAddress() == vip.Addr.String() && k.GetPort() == uint32(vip.Port) && k.GetProtocol() == vip.Proto {
			return v.GetCounter().GetPackets()
		}
	}
	return 0
}

// cli runs a vipcast command against an LB and fails the test unless it
// exits 0.
func cli(t *testing.T, x *lab.LB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, errOut, code := x.CLI(ctx, args...)
	if code != 0 {
		t.Fatalf("vipcast %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func mustExec(t *testing.T, ns *lab.NS, name string, args ...string) string {
	t.Helper()
	out, err := ns.Exec(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func itoa(i int) string { return strconv.Itoa(i) }

// vipOf finds a VIP of the default configuration by address and protocol.
func vipOf(addr netip.Addr, proto string) lab.VIPCfg {
	for _, v := range lab.DefaultVIPs() {
		if v.Addr == addr && v.Proto == proto {
			return v
		}
	}
	panic("no default VIP " + addr.String())
}
