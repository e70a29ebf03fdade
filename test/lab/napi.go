package lab

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The netdev generic netlink family (include/uapi/linux/netdev.h).
const (
	netdevCmdNapiGet   = 11
	netdevANapiIfindex = 1
	netdevANapiID      = 2
	netdevANapiPID     = 4
)

// pinLBReceive makes the LB's eth0 run its XDP program on CPU 0 only.
//
// vipcast's connection tables are per CPU, as Katran's: a flow must reach
// the balancer on the same CPU every time, which a NIC's RSS guarantees. A
// veth has no RSS: its receive NAPI runs on whichever CPU sent the frame,
// so a flow's packets wander between CPUs and, on a table miss, are placed
// again from the ring (harmless unless the ring changed, as during a
// drain). The lab gives the LB's veth a single receive context that stays
// put: GRO on, so the veth receives through NAPI from the start (and XDP
// reuses that NAPI), threaded NAPI, and its kernel thread pinned to CPU 0
// with a real-time priority.
func pinLBReceive(ns *NS, ifname string) error {
	if _, err := ns.Exec("ethtool", "-K", ifname, "gro", "on"); err != nil {
		return err
	}
	// Threaded NAPI is a sysfs knob; `ip netns exec` mounts the
	// namespace's own /sys for the command.
	if out, err := run(10*time.Second, "ip", "netns", "exec", ns.Name, "sh", "-c", "echo 1 > /sys/class/net/"+ifname+"/threaded"); err != nil {
		return fmt.Errorf("threaded NAPI on %s in %s: %w: %s", ifname, ns.Name, err, out)
	}
	var pids []int
	var napiIDs []uint32
	err := ns.Do(func() error {
		iface, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		fam, err := netlink.GenlFamilyGet("netdev")
		if err != nil {
			return fmt.Errorf("generic netlink family netdev: %w", err)
		}
		req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_DUMP)
		req.AddData(&nl.Genlmsg{Command: netdevCmdNapiGet, Version: 1})
		// The dump now and then fails with EINVAL while the veth's NAPI
		// is being set up (seen once in a soak's lab): ask again, a few
		// times, before giving up.
		var msgs [][]byte
		for attempt := 1; ; attempt++ {
			msgs, err = req.Execute(unix.NETLINK_GENERIC, 0)
			if err == nil || attempt == 5 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("netdev napi-get (5 attempts): %w", err)
		}
		for _, m := range msgs {
			attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
			if err != nil {
				return err
			}
			var ifindex, id, pid uint32
			for _, a := range attrs {
				if len(a.Value) < 4 {
					continue
				}
				v := binary.NativeEndian.Uint32(a.Value)
				switch a.Attr.Type {
				case netdevANapiIfindex:
					ifindex = v
				case netdevANapiID:
					id = v
				case netdevANapiPID:
					pid = v
				}
			}
			if int(ifindex) == iface.Attrs().Index && pid != 0 {
				pids = append(pids, int(pid))
				napiIDs = append(napiIDs, id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("NAPI threads of %s in %s: %w", ifname, ns.Name, err)
	}
	if len(pids) == 0 {
		return fmt.Errorf("%s in %s has no NAPI thread", ifname, ns.Name)
	}
	for i, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if want := fmt.Sprintf("napi/%s-%d", ifname, napiIDs[i]); strings.TrimSpace(string(comm)) != want {
			return fmt.Errorf("NAPI thread %d of %s in %s is %q, want %q", pid, ifname, ns.Name, strings.TrimSpace(string(comm)), want)
		}
		var cpus unix.CPUSet
		cpus.Set(0)
		if err := unix.SchedSetaffinity(pid, &cpus); err != nil {
			return fmt.Errorf("pin NAPI thread %d of %s in %s: %w", pid, ifname, ns.Name, err)
		}
		// Unthreaded NAPI runs in softirq, ahead of every process; a
		// threaded one competes with them. A real-time priority keeps
		// the LB's receive path from starving when the host is busy
		// (make test runs other packages' tests alongside).
		if err := unix.SchedSetAttr(pid, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 50}, 0); err != nil {
			return fmt.Errorf("real-time priority for NAPI thread %d of %s in %s: %w", pid, ifname, ns.Name, err)
		}
	}
	return nil
}
