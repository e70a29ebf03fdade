package bench

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The lab of the data-plane benchmark: one network namespace of its own
// (name with a per-run random suffix) holding a veth pair. The measured
// program "receives" on vethLB (the ingress_ifindex of the test run) and
// transmits into it; the frames arrive at vethPeer, where bench_peer runs.
// Nothing is routed and nothing leaves the namespace.
const (
	vethLB   = "veth-lb"
	vethPeer = "veth-peer"
	// MACs of the veths themselves. They differ from the frames' addresses
	// so that a frame the measured program passes to the kernel is not for
	// this host (PACKET_OTHERHOST) and is dropped at once by IP input.
	vethLBMAC   = "02:00:5e:00:00:10"
	vethPeerMAC = "02:00:5e:00:00:11"
)

type lab struct {
	ns       string
	lbIndex  int // ifindex of vethLB inside ns
	peerIdx  int // ifindex of vethPeer inside ns
	nsHandle int // open fd of /run/netns/<ns>
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newLab creates the namespace and the veth pair; b.Cleanup deletes the
// namespace (and with it the veths and whatever is attached to them), also
// when the benchmark fails.
func newLab(b *testing.B) *lab {
	b.Helper()
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		b.Fatal(err)
	}
	l := &lab{ns: "vcbench-" + hex.EncodeToString(suffix[:]), nsHandle: -1}
	if err := ipCmd("netns", "add", l.ns); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if l.nsHandle >= 0 {
			unix.Close(l.nsHandle)
		}
		if err := ipCmd("netns", "delete", l.ns); err != nil {
			b.Errorf("cleanup: %v", err)
		}
	})
	// No IPv6 on the veths: no router solicitations or DAD probes arrive
	// at the peer while it counts frames.
	if out, err := exec.Command("ip", "netns", "exec", l.ns, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil {
		b.Fatalf("disable IPv6 in %s: %v: %s", l.ns, err, out)
	}
	for _, args := range [][]string{
		{"-n", l.ns, "link", "add", vethLB, "address", vethLBMAC, "type", "veth", "peer", "name", vethPeer, "address", vethPeerMAC},
		{"-n", l.ns, "link", "set", vethLB, "up"},
		{"-n", l.ns, "link", "set", vethPeer, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			b.Fatal(err)
		}
	}
	var err error
	if l.lbIndex, err = l.ifindex(vethLB); err != nil {
		b.Fatal(err)
	}
	if l.peerIdx, err = l.ifindex(vethPeer); err != nil {
		b.Fatal(err)
	}
	if l.nsHandle, err = unix.Open("/run/netns/"+l.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		b.Fatalf("open netns %s: %v", l.ns, err)
	}
	return l
}

func (l *lab) ifindex(name string) (int, error) {
	out, err := exec.Command("ip", "-n", l.ns, "-j", "link", "show", "dev", name).Output()
	if err != nil {
		return 0, fmt.Errorf("ip -n %s link show %s: %v", l.ns, name, err)
	}
	var links []struct {
		Ifindex int `json:"ifindex"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Ifindex == 0 {
		return 0, fmt.Errorf("ip -n %s link show %s: unexpected output %q", l.ns, name, out)
	}
	return links[0].Ifindex, nil
}

// enter locks the calling goroutine to its OS thread, pins that thread to
// one CPU and moves it into the lab's namespace (BPF_PROG_TEST_RUN resolves
// ingress_ifindex, and XDP attachment its target, in the caller's
// namespace). The returned function undoes all three; if the thread cannot
// be put back it stays locked, so the runtime discards it when the
// goroutine ends instead of reusing it elsewhere.
func (l *lab) enter(b *testing.B) (cpu int, leave func()) {
	b.Helper()
	runtime.LockOSThread()
	fail := func(format string, args ...any) {
		runtime.UnlockOSThread()
		b.Fatalf(format, args...)
	}

	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		fail("sched_getaffinity: %v", err)
	}
	cpu = -1
	for c := range runtime.NumCPU() * 4 {
		if orig.IsSet(c) {
			cpu = c // the highest allowed CPU: on these VMs CPU 0 takes most device interrupts
		}
	}
	if cpu < 0 {
		fail("no CPU in the affinity mask")
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		fail("sched_setaffinity(%d): %v", cpu, err)
	}

	origNS, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.SchedSetaffinity(0, &orig)
		fail("open own netns: %v", err)
	}
	if err := unix.Setns(l.nsHandle, unix.CLONE_NEWNET); err != nil {
		unix.Close(origNS)
		_ = unix.SchedSetaffinity(0, &orig)
		fail("enter netns %s: %v", l.ns, err)
	}
	return cpu, func() {
		err := unix.Setns(origNS, unix.CLONE_NEWNET)
		unix.Close(origNS)
		_ = unix.SchedSetaffinity(0, &orig)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: cannot leave netns %s (%v); the thread is retired\n", l.ns, err)
			return
		}
		runtime.UnlockOSThread()
	}
}
