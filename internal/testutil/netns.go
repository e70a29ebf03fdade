package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// NS is a network namespace a test created; it is removed at cleanup.
type NS struct {
	Name string // as `ip netns` knows it
	Path string // /run/netns/Name
}

// RunID returns a short random id that prefixes everything a test run
// creates, so parallel or leftover runs never collide.
func RunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewNS creates the namespace "vc<id>-<role>" with loopback up. Under
// t.Cleanup every process started in it is killed and it is deleted.
func NewNS(t testing.TB, id, role string) *NS {
	t.Helper()
	RequirePrivileged(t)
	name := "vc" + id + "-" + role
	if len(name) > 15+10 { // keep interface-ish names readable
		t.Fatalf("namespace name %q too long", name)
	}
	MustRun(t, "ip", "netns", "add", name)
	ns := &NS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		// Kill what still runs inside, then delete; both best effort.
		if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			self := strconv.Itoa(os.Getpid())
			for _, pid := range strings.Fields(string(out)) {
				if pid != self {
					_ = exec.Command("kill", "-9", pid).Run()
				}
			}
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	ns.MustExec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Cmd prepares a command that runs inside the namespace. It uses nsenter,
// not `ip netns exec`, which remounts /sys and hides bpffs pins.
func (n *NS) Cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path, "--", name}, args...)...)
}

// Exec runs a command inside the namespace (bounded to 30 s) and returns
// its combined output.
func (n *NS) Exec(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := n.Cmd(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, out.String())
	}
	return out.Bytes(), nil
}

// MustExec is Exec that fails the test on error.
func (n *NS) MustExec(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := n.Exec(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Start runs a long-lived command in the namespace; it is killed at cleanup.
func (n *NS) Start(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.Cmd(ctx, name, args...)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s in %s: %v", name, n.Name, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return cmd
}

// Do runs fn on an OS thread that has entered the namespace, for Go code
// (netlink, sockets, BPF attach) that must act inside it.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return // the locked thread ends with the goroutine
		}
		defer orig.Close()
		target, err := netns.GetFromPath(n.Path)
		if err != nil {
			errc <- fmt.Errorf("open %s: %w", n.Path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter %s: %w", n.Name, err)
			return
		}
		err = fn()
		// Only a thread back in its own namespace may serve other
		// goroutines; one that cannot return stays locked and ends.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Veth connects two namespaces with a veth pair, names the ends, and
// brings both up. TX checksum offload is turned off on both ends: frames
// that XDP rewrites would otherwise reach TCP with bad checksums (TESTBED.md).
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	tmpA, tmpB := "vt"+RunID(), "vt"+RunID()
	MustRun(t, "ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	MustRun(t, "ip", "link", "set", tmpA, "netns", a.Name, "name", aName)
	MustRun(t, "ip", "link", "set", tmpB, "netns", b.Name, "name", bName)
	for _, end := range []struct {
		ns   *NS
		name string
	}{{a, aName}, {b, bName}} {
		end.ns.MustExec(t, "ip", "link", "set", end.name, "up")
		end.ns.MustExec(t, "ethtool", "-K", end.name, "tx", "off")
	}
}

// MustRun runs a host command (bounded to 30 s) and fails the test on error.
func MustRun(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return out
}
