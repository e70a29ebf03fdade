package lb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"vipcast/bpf"
)

// XDPMode says how an XDP program is attached.
type XDPMode string

const (
	// XDPNative runs in the driver: the fast path, and the default.
	XDPNative XDPMode = "native"
	// XDPGeneric runs after the kernel built an skb: works on any
	// interface, much slower. Only used when asked for.
	XDPGeneric XDPMode = "generic"
	// XDPAuto tries native, then falls back to generic.
	XDPAuto XDPMode = "auto"
)

// linkPin is the name of a pinned XDP link inside a pin directory.
const linkPin = "xdp_link"

// Attached is the result of an attach: the link and how it was made.
type Attached struct {
	Link    link.Link
	Mode    XDPMode // native or generic
	Updated bool    // an existing pinned link now runs the new program
}

// AttachXDP attaches prog to an interface with a BPF link pinned under
// pinDir. If the directory already holds vipcast's link for that
// interface (a restart or upgrade), the link is switched to the new
// program atomically: no packet meets an interface without a program. An
// XDP program that vipcast did not attach is never replaced.
func AttachXDP(prog *ebpf.Program, ifname string, mode XDPMode, pinDir string) (*Attached, error) {
	iface, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", ifname, err)
	}
	pin := filepath.Join(pinDir, linkPin)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(prog); err != nil {
			l.Close()
			return nil, fmt.Errorf("switch the pinned XDP link %s to the new program: %w", pin, err)
		}
		return &Attached{Link: l, Mode: attachedMode(iface), Updated: true}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load pinned XDP link %s: %w", pin, err)
	}

	if xdp := iface.Attrs().Xdp; xdp != nil && xdp.Attached {
		return nil, fmt.Errorf("interface %s already has an XDP program (id %d) that vipcast did not attach; "+
			"it will not be replaced: detach it (ip link set dev %s xdp off) or run vipcast in shared mode behind a root program",
			ifname, xdp.ProgId, ifname)
	}

	attach := func(flags link.XDPAttachFlags) (link.Link, error) {
		return link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Attrs().Index, Flags: flags})
	}
	used := XDPNative
	var l link.Link
	switch mode {
	case XDPNative, "":
		l, err = attach(link.XDPDriverMode)
	case XDPGeneric:
		used = XDPGeneric
		l, err = attach(link.XDPGenericMode)
	case XDPAuto:
		if l, err = attach(link.XDPDriverMode); err != nil {
			used = XDPGeneric
			l, err = attach(link.XDPGenericMode)
		}
	default:
		return nil, fmt.Errorf("xdp_mode %q: must be native, generic or auto: %w", mode, ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("attach XDP (%s) to %s: %w", used, ifname, err)
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin directory %s: %w", pinDir, err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin XDP link at %s: %w", pin, err)
	}
	return &Attached{Link: l, Mode: used}, nil
}

// xdpAttachedSKB is IFLA_XDP_ATTACHED's value for generic mode
// (XDP_ATTACHED_SKB in <linux/if_link.h>).
const xdpAttachedSKB = 2

func attachedMode(iface netlink.Link) XDPMode {
	if xdp := iface.Attrs().Xdp; xdp != nil && xdp.AttachMode == xdpAttachedSKB {
		return XDPGeneric
	}
	return XDPNative
}

// RootPinDir is where InstallRoot pins an interface's root program state
// by default.
func RootPinDir(ifname string) string { return filepath.Join(BPFFS, "vipcast", "root_"+ifname) }

// rootArrayPin is the prog array's file inside a root pin directory; it is
// the path vipcastd's `root_map_path` names in shared mode.
const rootArrayPin = "progs"

// InstallRoot attaches vipcast's root program to an interface with a prog
// array of `slots` entries and pins both under pinDir. Other XDP programs
// (and vipcastd in shared mode) then register into its slots. Installing
// again where a root is already installed only reports its array.
func InstallRoot(ifname string, slots int, mode XDPMode, pinDir string) (arrayPath string, err error) {
	if slots < 1 || slots > 32 {
		return "", fmt.Errorf("root slots: must be 1..32, got %d: %w", slots, ErrInvalid)
	}
	arrayPath = filepath.Join(pinDir, rootArrayPin)
	if _, err := os.Stat(filepath.Join(pinDir, linkPin)); err == nil {
		return arrayPath, nil
	}
	spec, err := bpf.LoadRoot()
	if err != nil {
		return "", fmt.Errorf("load root spec: %w", err)
	}
	spec.Maps["root_progs"].MaxEntries = uint32(slots)
	var objs bpf.RootObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return "", fmt.Errorf("load root program: %w", err)
	}
	defer objs.Close()
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return "", fmt.Errorf("pin directory %s: %w", pinDir, err)
	}
	if err := objs.RootProgs.Pin(arrayPath); err != nil {
		return "", fmt.Errorf("pin root prog array at %s: %w", arrayPath, err)
	}
	att, err := AttachXDP(objs.VipcastRoot, ifname, mode, pinDir)
	if err != nil {
		_ = objs.RootProgs.Unpin()
		return "", err
	}
	att.Link.Close() // the pin keeps it attached
	return arrayPath, nil
}

// RegisterInRoot puts prog into slot `position` of a pinned root prog
// array, replacing what was there (a restarted vipcastd replaces itself
// atomically).
func RegisterInRoot(prog *ebpf.Program, arrayPath string, position int) error {
	arr, err := ebpf.LoadPinnedMap(arrayPath, nil)
	if err != nil {
		return fmt.Errorf("root prog array %s (install one with `vipcast xdp-root install IFACE`): %w", arrayPath, err)
	}
	defer arr.Close()
	if arr.Type() != ebpf.ProgramArray {
		return fmt.Errorf("%s is a %s, not a prog array: %w", arrayPath, arr.Type(), ErrInvalid)
	}
	if position < 0 || uint32(position) >= arr.MaxEntries() {
		return fmt.Errorf("prog_position: must be 0..%d for %s, got %d: %w", arr.MaxEntries()-1, arrayPath, position, ErrInvalid)
	}
	if err := arr.Put(uint32(position), prog); err != nil {
		return fmt.Errorf("register in slot %d of %s: %w", position, arrayPath, err)
	}
	return nil
}

// UnregisterFromRoot empties a slot (idempotent).
func UnregisterFromRoot(arrayPath string, position int) error {
	arr, err := ebpf.LoadPinnedMap(arrayPath, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("root prog array %s: %w", arrayPath, err)
	}
	defer arr.Close()
	if err := arr.Delete(uint32(position)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("clear slot %d of %s: %w", position, arrayPath, err)
	}
	return nil
}

// tcLinkPin is the name of the pinned TC (tcx egress) link.
const tcLinkPin = "tc_egress_link"

// AttachTCEgress attaches prog at tcx egress of an interface with a link
// pinned under pinDir, or switches the pinned link of an earlier run to
// prog. It goes last in the interface's egress chain, and passes on what
// it leaves alone (TC_ACT_UNSPEC), so other egress programs keep working.
func AttachTCEgress(prog *ebpf.Program, ifname string, pinDir string) (link.Link, error) {
	pin := filepath.Join(pinDir, tcLinkPin)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(prog); err != nil {
			l.Close()
			return nil, fmt.Errorf("switch the pinned TC link %s to the new program: %w", pin, err)
		}
		return l, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load pinned TC link %s: %w", pin, err)
	}
	iface, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", ifname, err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Program: prog, Attach: ebpf.AttachTCXEgress, Interface: iface.Attrs().Index, Anchor: link.Tail()})
	if err != nil {
		return nil, fmt.Errorf("attach healthcheck program at tcx egress of %s: %w", ifname, err)
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin directory %s: %w", pinDir, err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin TC link at %s: %w", pin, err)
	}
	return l, nil
}
