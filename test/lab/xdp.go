package lab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// XDP return codes (enum xdp_action).
const xdpPass = 2

// attachPass attaches an XDP program that passes every frame to an
// interface inside ns, with its link pinned at pin so it stays after the
// caller exits. The lab puts it on the fabric end of each LB's veth: a
// frame the balancer sends with XDP_TX into a veth is dropped unless the
// peer has an XDP program (TESTBED.md).
func attachPass(ns *NS, ifname, pin string) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "lab_pass",
		Type:         ebpf.XDP,
		License:      "Dual BSD/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("load the XDP pass program: %w", err)
	}
	defer prog.Close()
	return attachXDPPinned(ns, ifname, prog, pin)
}

func attachXDPPinned(ns *NS, ifname string, prog *ebpf.Program, pin string) error {
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return err
	}
	return ns.Do(func() error {
		iface, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ifname, ns.Name, err)
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Attrs().Index})
		if err != nil {
			return fmt.Errorf("attach XDP to %s in %s: %w", ifname, ns.Name, err)
		}
		defer l.Close()
		if err := l.Pin(pin); err != nil {
			return fmt.Errorf("pin the XDP link of %s in %s: %w", ifname, ns.Name, err)
		}
		return nil
	})
}

// macFor is the lab's MAC address for a host: 02:00:00:00:00:<last octet
// of its IPv4 address>, so captures read easily.
func macFor(v4 netip.Addr) net.HardwareAddr {
	b := v4.As4()
	return net.HardwareAddr{0x02, 0, 0, 0, 0, b[3]}
}
