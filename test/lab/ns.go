package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// NS is one of the lab's network namespaces.
type NS struct {
	Name string // as `ip netns` knows it: vc<id>-<role>
	Path string // /run/netns/<Name>
}

func nsName(id, role string) string { return "vc" + id + "-" + role }

func openNS(name string) *NS { return &NS{Name: name, Path: "/run/netns/" + name} }

// createNS adds a namespace with its loopback up.
func createNS(name string) (*NS, error) {
	if _, err := run(10*time.Second, "ip", "netns", "add", name); err != nil {
		return nil, err
	}
	n := openNS(name)
	if _, err := n.Exec("ip", "link", "set", "lo", "up"); err != nil {
		return n, err
	}
	return n, nil
}

// remove kills every process inside the namespace (except this one) and
// deletes it. Best effort: a namespace that is already gone is fine.
func (n *NS) remove() error {
	if _, err := os.Stat(n.Path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	killAll(n, syscall.SIGTERM, 2*time.Second)
	_, err := run(10*time.Second, "ip", "netns", "del", n.Name)
	return err
}

// pids lists the processes whose network namespace is this one.
func (n *NS) pids() []int {
	out, err := exec.Command("ip", "netns", "pids", n.Name).Output()
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != self {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killAll signals every process in the namespace, waits up to grace for
// them to go, then kills what is left.
func killAll(n *NS, sig syscall.Signal, grace time.Duration) {
	pids := n.pids()
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
	deadline := time.Now().Add(grace)
	for len(n.pids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range n.pids() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Cmd prepares a command that runs inside the namespace. It enters with
// nsenter, not `ip netns exec`, which remounts /sys and hides the pins on
// the BPF filesystem (TESTBED.md).
func (n *NS) Cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path, "--", name}, args...)...)
}

// Exec runs a command inside the namespace, bounded to 30 s, and returns
// its combined output.
func (n *NS) Exec(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := n.Cmd(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// Do runs fn on an OS thread that has entered the namespace: sockets,
// netlink handles and BPF links fn creates belong to it.
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
		// Only a thread back in its own namespace may run other
		// goroutines; one that cannot return stays locked and ends.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Sysctl sets net.* keys inside the namespace ("net.ipv4.ip_forward" = "1").
// /proc/sys/net shows the namespace of the thread that opens it.
func (n *NS) Sysctl(kv ...string) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("sysctl: odd number of arguments")
	}
	return n.Do(func() error {
		for i := 0; i < len(kv); i += 2 {
			path := filepath.Join("/proc/sys", strings.ReplaceAll(kv[i], ".", "/"))
			if err := os.WriteFile(path, []byte(kv[i+1]), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", kv[i], kv[i+1], n.Name, err)
			}
		}
		return nil
	})
}

// run runs a host command, bounded, and returns its combined output.
func run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}
