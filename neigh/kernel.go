package neigh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// reasonError is an error with its own message that still matches one of
// the package's sentinel errors with errors.Is.
type reasonError struct {
	msg  string
	kind error
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.kind }

func reason(kind error, format string, args ...any) error {
	return &reasonError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// dumpAttempts bounds how often a dump interrupted by a concurrent change
// (NLM_F_DUMP_INTR, netlink.ErrDumpInterrupted) is repeated before the
// evaluation gives up and retries later.
const dumpAttempts = 5

// dump repeats fn while the kernel reports the dump as interrupted.
func dump[T any](what string, fn func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		res, err := fn()
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("dump %s: %w", what, err)
		}
		if i+1 == dumpAttempts {
			return nil, fmt.Errorf("dump %s: interrupted %d times in a row: %w", what, dumpAttempts, err)
		}
	}
}

// nextHop is the chosen default route of one family on the interface.
type nextHop struct {
	ip     netip.Addr
	metric int
}

// isDefault reports whether dst is a default destination (0.0.0.0/0, ::/0);
// the kernel sends no RTA_DST for those, which netlink decodes as nil.
func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// gatewayOf is a route's (or multipath leg's) next hop: RTA_GATEWAY, or
// RTA_VIA for an IPv4 route through an IPv6 neighbour.
func gatewayOf(gw net.IP, via netlink.Destination) netip.Addr {
	if a, ok := netip.AddrFromSlice(gw); ok {
		return a.Unmap()
	}
	if v, ok := via.(*netlink.Via); ok && v != nil {
		if a, ok := netip.AddrFromSlice(v.Addr); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// pickDefault chooses, among routes of one family and table, the default
// route through ifindex with the lowest metric and returns its next hop.
// names maps other interfaces' indexes to names for the error message.
func pickDefault(routes []netlink.Route, fam Family, ifindex int, ifname string, names func(int) string) (nextHop, error) {
	var (
		best      nextHop
		found     bool
		deviceRt  bool
		elsewhere []string
	)
	consider := func(gw netip.Addr, metric int) {
		if !gw.IsValid() {
			deviceRt = true
			return
		}
		if !found || metric < best.metric {
			best, found = nextHop{ip: gw, metric: metric}, true
		}
	}
	for _, rt := range routes {
		if !isDefault(rt.Dst) || rt.Type != unix.RTN_UNICAST {
			continue
		}
		if len(rt.MultiPath) == 0 {
			if rt.LinkIndex == ifindex {
				consider(gatewayOf(rt.Gw, rt.Via), rt.Priority)
			} else {
				elsewhere = append(elsewhere, names(rt.LinkIndex))
			}
			continue
		}
		for _, leg := range rt.MultiPath {
			if leg.LinkIndex == ifindex {
				consider(gatewayOf(leg.Gw, leg.Via), rt.Priority)
			} else {
				elsewhere = append(elsewhere, names(leg.LinkIndex))
			}
		}
	}
	if found {
		return best, nil
	}
	if deviceRt {
		return nextHop{}, reason(ErrNoRoute, "%s default route via %s has no gateway address (a device route); set the gateway MAC explicitly", fam.name(), ifname)
	}
	if len(elsewhere) > 0 {
		slices.Sort(elsewhere)
		elsewhere = slices.Compact(elsewhere)
		return nextHop{}, reason(ErrNoRoute, "no %s default route via %s (default route uses %s)", fam.name(), ifname, strings.Join(elsewhere, ", "))
	}
	return nextHop{}, reason(ErrNoRoute, "no %s default route via %s", fam.name(), ifname)
}

func netlinkFamily(f Family) int {
	if f == IPv6 {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// defaultNextHop reads the family's routes of table and picks the default
// route through link.
func defaultNextHop(h *netlink.Handle, fam Family, table int, link *netlink.LinkAttrs) (nextHop, error) {
	routes, err := dump("routes", func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlinkFamily(fam), &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nextHop{}, err
	}
	names := func(index int) string {
		if l, err := h.LinkByIndex(index); err == nil {
			return l.Attrs().Name
		}
		return fmt.Sprintf("ifindex %d", index)
	}
	return pickDefault(routes, fam, link.Index, link.Name, names)
}

// neighbour is the kernel's entry for a next hop; state 0 (NUD_NONE) and a
// nil mac when there is none.
type neighbour struct {
	state int
	mac   net.HardwareAddr
}

func lookupNeighbour(h *netlink.Handle, ifindex int, ip netip.Addr) (neighbour, error) {
	entries, err := dump("neighbours", func() ([]netlink.Neigh, error) {
		return h.NeighList(ifindex, netlinkFamily(familyOf(ip)))
	})
	if err != nil {
		return neighbour{}, err
	}
	for _, e := range entries {
		if a, ok := netip.AddrFromSlice(e.IP); ok && a.Unmap() == ip.WithZone("") {
			return neighbour{state: e.State, mac: e.HardwareAddr}, nil
		}
	}
	return neighbour{}, nil
}

const (
	nudAuthoritative = netlink.NUD_PERMANENT | netlink.NUD_NOARP | netlink.NUD_REACHABLE
	nudHasMAC        = nudAuthoritative | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE
)

// usable reports whether the entry carries a MAC the kernel believes in.
func (n neighbour) usable() bool {
	return n.state&nudHasMAC != 0 && validMAC(n.mac)
}

// authoritative reports whether the entry is confirmed (or configured) and
// needs no probing of ours.
func (n neighbour) authoritative() bool {
	return n.usable() && n.state&nudAuthoritative != 0
}

// stateName is the entry's state as `ip neigh` prints it.
func stateName(state int) string {
	if state == netlink.NUD_NONE {
		return "none"
	}
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "incomplete"}, {netlink.NUD_REACHABLE, "reachable"},
		{netlink.NUD_STALE, "stale"}, {netlink.NUD_DELAY, "delay"}, {netlink.NUD_PROBE, "probe"},
		{netlink.NUD_FAILED, "failed"}, {netlink.NUD_NOARP, "noarp"}, {netlink.NUD_PERMANENT, "permanent"},
	}
	var out []string
	for _, n := range names {
		if state&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("0x%x", state)
	}
	return strings.Join(out, ",")
}

// validMAC reports whether mac can be a gateway's Ethernet address:
// 6 bytes, not zero, not multicast or broadcast.
func validMAC(mac net.HardwareAddr) bool {
	if len(mac) != 6 || mac[0]&1 != 0 {
		return false
	}
	for _, b := range mac {
		if b != 0 {
			return true
		}
	}
	return false
}

// sourceAddress picks our address to send ARP or NDP from: for IPv4 the
// address whose prefix holds the next hop, else the first one; for IPv6 a
// link-local address (what NDP normally uses, and the only choice for a
// link-local next hop), else a global one in the next hop's prefix, else
// any. Tentative and DAD-failed addresses cannot be bound and are skipped.
func sourceAddress(h *netlink.Handle, link netlink.Link, next netip.Addr) (netip.Addr, error) {
	fam := familyOf(next)
	addrs, err := dump("addresses", func() ([]netlink.Addr, error) {
		return h.AddrList(link, netlinkFamily(fam))
	})
	if err != nil {
		return netip.Addr{}, err
	}
	var first, inPrefix, linkLocal netip.Addr
	for _, a := range addrs {
		if a.IPNet == nil || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		if !first.IsValid() {
			first = ip
		}
		if ip.IsLinkLocalUnicast() {
			if !linkLocal.IsValid() {
				linkLocal = ip
			}
			continue
		}
		if p, err := ip.Prefix(ones); err == nil && p.Contains(next.WithZone("")) && !inPrefix.IsValid() {
			inPrefix = ip
		}
	}
	name := link.Attrs().Name
	switch {
	case fam == IPv4 && inPrefix.IsValid():
		return inPrefix, nil
	case fam == IPv4 && first.IsValid():
		return first, nil
	case fam == IPv6 && linkLocal.IsValid():
		return linkLocal, nil
	case fam == IPv6 && next.IsLinkLocalUnicast():
		return netip.Addr{}, fmt.Errorf("no usable link-local address on %s to send NDP for %s from (still tentative?)", name, next)
	case fam == IPv6 && inPrefix.IsValid():
		return inPrefix, nil
	case fam == IPv6 && first.IsValid():
		return first, nil
	}
	return netip.Addr{}, fmt.Errorf("no usable %s address on %s to send %s from", fam.name(), name, protocolFor(fam))
}

func protocolFor(f Family) string {
	if f == IPv4 {
		return "ARP"
	}
	return "NDP"
}
