package cli

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"vipcast/lb"
)

// Host commands act on this machine directly (they need root), not through
// vipcastd: setting up a real to receive tunnelled traffic, and installing
// the root XDP program for shared mode.

func newRealSetupCommand(a *app) *cobra.Command {
	var (
		ifname string
		vips   []string
		pinDir string
		mode   string
		remove bool
	)
	cmd := &cobra.Command{
		Use:   "real-setup --interface IFACE --vip ADDR [--vip ADDR ...]",
		Short: "Prepare this host as a real: decapsulate vipcast's tunnels and own the VIPs",
		Long: `real-setup prepares a real server for vipcast's direct server return, on
this host, without a kernel tunnel device:

  - attaches vipcast's XDP decapsulation program to IFACE: it removes the
    IPIP / IP6IP6 / IPv4-in-IPv6 header of packets whose inner destination
    is one of the VIPs (anything else passes untouched);
  - adds each VIP to lo, so the kernel accepts and answers for it;
  - sets rp_filter to 0 (all, lo and IFACE): tunnelled packets arrive with
    client sources the reverse path check would drop.

Run it again with a different --vip list to change the VIPs. --remove
detaches the program and removes the given VIPs from lo.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ifname == "" {
				return fmt.Errorf("--interface is required")
			}
			if pinDir == "" {
				pinDir = filepath.Join(lb.BPFFS, "vipcast", "decap_"+ifname)
			}
			addrs := make([]netip.Addr, 0, len(vips))
			for _, v := range vips {
				ad, err := netip.ParseAddr(v)
				if err != nil || ad.Is4In6() || ad.Zone() != "" {
					return fmt.Errorf("invalid --vip %q: want a plain IPv4 or IPv6 address", v)
				}
				addrs = append(addrs, ad)
			}
			if remove {
				return a.realRemove(ifname, addrs, pinDir)
			}
			if len(addrs) == 0 {
				return fmt.Errorf("at least one --vip is required")
			}
			return a.realSetup(ifname, addrs, pinDir, lb.XDPMode(mode))
		},
	}
	f := cmd.Flags()
	f.StringVar(&ifname, "interface", "", "the interface tunnelled traffic arrives on")
	f.StringArrayVar(&vips, "vip", nil, "a VIP address this real serves (repeat for more)")
	f.StringVar(&pinDir, "pin-dir", "", "where the program's state is pinned (default /sys/fs/bpf/vipcast/decap_IFACE)")
	f.StringVar(&mode, "xdp-mode", string(lb.XDPAuto), "native, generic or auto")
	f.BoolVar(&remove, "remove", false, "undo: detach the program and remove the VIPs from lo")
	f.BoolVar(&remove, "undo", false, "the same as --remove")
	return cmd
}

func (a *app) realSetup(ifname string, vips []netip.Addr, pinDir string, mode lb.XDPMode) error {
	if err := lb.EnsureBPFFS(); err != nil {
		return err
	}
	d, err := lb.LoadDecap(pinDir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.SetVIPs(vips); err != nil {
		return err
	}
	att, err := lb.AttachXDP(d.Program(), ifname, mode, pinDir)
	if err != nil {
		return err
	}
	att.Link.Close() // pinned: stays attached after this command exits
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	for _, v := range vips {
		addr := &netlink.Addr{IPNet: netipToIPNet(netip.PrefixFrom(v, v.BitLen()))}
		if v.Is6() {
			// No duplicate address detection on lo: a tentative VIP
			// cannot be bound, and every real has the same VIP anyway.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(lo, addr); err != nil {
			return fmt.Errorf("add VIP %s to lo: %w", v, err)
		}
	}
	for _, dev := range []string{"all", "lo", ifname} {
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/rp_filter", []byte("0"), 0o644); err != nil {
			return fmt.Errorf("rp_filter of %s: %w", dev, err)
		}
	}
	fmt.Fprintf(a.stdout, "%s: decapsulating for %d VIPs (xdp %s), VIPs on lo, rp_filter off\n", ifname, len(vips), att.Mode)
	return nil
}

func (a *app) realRemove(ifname string, vips []netip.Addr, pinDir string) error {
	if err := lb.RemovePins(pinDir); err != nil {
		return err
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		for _, v := range vips {
			addr := &netlink.Addr{IPNet: netipToIPNet(netip.PrefixFrom(v, v.BitLen()))}
			_ = netlink.AddrDel(lo, addr) // absent is fine
		}
	}
	fmt.Fprintf(a.stdout, "%s: decapsulation removed\n", ifname)
	return nil
}

func newXDPRootCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "xdp-root", Short: "Install vipcast's root XDP program, for shared mode"}
	var (
		slots  int
		pinDir string
		mode   string
	)
	install := &cobra.Command{
		Use:   "install IFACE",
		Short: "Attach the root program to IFACE and pin its prog array",
		Long: `install attaches vipcast's root XDP program to IFACE. It runs the programs
registered in the slots of its prog array, slot 0 first; vipcastd in shared
mode registers itself in a slot (root_map_path and prog_position in its
configuration). The array is pinned at PIN-DIR/progs, which is what
root_map_path names. Installing again where a root exists changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lb.EnsureBPFFS(); err != nil {
				return err
			}
			if pinDir == "" {
				pinDir = lb.RootPinDir(args[0])
			}
			path, err := lb.InstallRoot(args[0], slots, lb.XDPMode(mode), pinDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "root program on %s; root_map_path = %q\n", args[0], path)
			return nil
		},
	}
	install.Flags().IntVar(&slots, "slots", 3, "size of the prog array")
	install.Flags().StringVar(&pinDir, "pin-dir", "", "pin directory (default /sys/fs/bpf/vipcast/root_IFACE)")
	install.Flags().StringVar(&mode, "xdp-mode", string(lb.XDPNative), "native, generic or auto")
	remove := &cobra.Command{
		Use:   "remove IFACE",
		Short: "Detach the root program from IFACE and remove its pins",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pinDir == "" {
				pinDir = lb.RootPinDir(args[0])
			}
			if err := lb.RemovePins(pinDir); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "root program removed from %s\n", args[0])
			return nil
		},
	}
	remove.Flags().StringVar(&pinDir, "pin-dir", "", "pin directory (default /sys/fs/bpf/vipcast/root_IFACE)")
	cmd.AddCommand(install, remove)
	return cmd
}

func netipToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
