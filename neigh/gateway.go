package neigh

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Family is an IP address family; in Options.Families, a set of them.
type Family uint8

const (
	IPv4 Family = 1 << iota
	IPv6
	// Both is IPv4 and IPv6, the default for Options.Families.
	Both = IPv4 | IPv6
)

func (f Family) String() string {
	switch f {
	case 0:
		return "none"
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	case Both:
		return "ipv4+ipv6"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// name is the family as it appears in messages ("IPv4").
func (f Family) name() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return f.String()
}

// Where a gateway MAC came from (Gateway.Source, Hop.Source).
const (
	SourceStatic = "static"
	SourceTable  = "neighbor table"
	SourceARP    = "arp"
	SourceNDP    = "ndp"
)

// Reasons a MAC is unknown; Gateway.Err and Hop.Err wrap one of them, with
// the details (interface, next hop, attempts) in the message.
var (
	// ErrNoInterface: the watched interface does not exist.
	ErrNoInterface = errors.New("interface not found")
	// ErrNoRoute: no usable default route through the watched interface.
	ErrNoRoute = errors.New("no default route")
	// ErrUnanswered: the next hop did not answer ARP or NDP.
	ErrUnanswered = errors.New("gateway unanswered")
	// ErrResolving: an active resolution is in progress (first attempt).
	ErrResolving = errors.New("resolving")
	// ErrNotStarted: Run has not computed a first result yet.
	ErrNotStarted = errors.New("gateway not resolved yet")
)

// Hop is one family's view: its default route's next hop and that hop's MAC.
type Hop struct {
	Family Family
	// IP is the chosen default route's next hop; invalid when there is none.
	IP netip.Addr
	// Metric is the chosen default route's metric (priority).
	Metric int
	// MAC is nil when unknown, and then Err says why.
	MAC    net.HardwareAddr
	Source string
	// State is the kernel neighbour entry's state for IP ("reachable",
	// "stale", ..., "none" when there is no entry); empty without a next hop.
	State string
	Err   error
}

// Known reports whether the hop's MAC is known.
func (h Hop) Known() bool { return h.MAC != nil }

func (h Hop) String() string {
	if h.Family == 0 {
		return "not watched"
	}
	if h.MAC == nil {
		if h.Err == nil {
			return "unknown"
		}
		return "unknown: " + h.Err.Error()
	}
	return fmt.Sprintf("%s via %s metric %d (%s, %s)", h.MAC, h.IP, h.Metric, h.Source, h.State)
}

// Gateway is the resolved gateway of one interface. MAC, IP, Family and
// Source describe the MAC the data plane should use (see the package
// documentation for which family wins); IPv4 and IPv6 hold each family's
// own result.
type Gateway struct {
	Interface string
	// MAC is nil when no gateway MAC is known; Err then says why.
	MAC net.HardwareAddr
	// IP is the next hop MAC belongs to (invalid for a static MAC).
	IP netip.Addr
	// Family is the family whose next hop won (zero for a static MAC).
	Family Family
	// Source is one of SourceStatic, SourceTable, SourceARP, SourceNDP.
	Source string
	Err    error
	// IPv4 and IPv6 are the families' own results; a family that is not
	// watched (or a static MAC) leaves its Hop zero.
	IPv4, IPv6 Hop
	// Since is when MAC, IP, Family or Err last changed.
	Since time.Time
}

// Known reports whether a gateway MAC is known.
func (g Gateway) Known() bool { return g.MAC != nil }

func (g Gateway) String() string {
	if g.MAC == nil {
		if g.Err == nil {
			return fmt.Sprintf("%s: gateway unknown", g.Interface)
		}
		return fmt.Sprintf("%s: gateway unknown: %v", g.Interface, g.Err)
	}
	if g.Source == SourceStatic {
		return fmt.Sprintf("%s: gateway %s (static)", g.Interface, g.MAC)
	}
	return fmt.Sprintf("%s: gateway %s (%s next hop %s, %s)", g.Interface, g.MAC, g.Family.name(), g.IP, g.Source)
}

// sameDataPlane reports whether g and o would program the same thing: it
// ignores Source, the per-family details and timestamps, so that only a
// changed or lost MAC (or a changed reason) is announced on Updates.
func (g Gateway) sameDataPlane(o Gateway) bool {
	return bytes.Equal(g.MAC, o.MAC) && g.IP == o.IP && g.Family == o.Family && errText(g.Err) == errText(o.Err)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// choose applies the data-plane rule to the families' results: IPv4's MAC
// if known, else IPv6's; with neither, the reasons of both.
func choose(iface string, v4, v6 Hop) Gateway {
	g := Gateway{Interface: iface, IPv4: v4, IPv6: v6}
	for _, h := range []Hop{v4, v6} {
		if h.Family != 0 && h.MAC != nil {
			g.MAC, g.IP, g.Family, g.Source = h.MAC, h.IP, h.Family, h.Source
			return g
		}
	}
	var msgs []string
	var errs []error
	for _, h := range []Hop{v4, v6} {
		if h.Family == 0 {
			continue
		}
		err := h.Err
		if err == nil {
			err = ErrNotStarted
		}
		if !slices.Contains(msgs, err.Error()) {
			msgs = append(msgs, err.Error())
		}
		errs = append(errs, err)
	}
	switch len(errs) {
	case 0:
		g.Err = ErrNotStarted
	case 1:
		g.Err = errs[0]
	default: // a reason both share (no interface) is said once
		g.Err = &multiError{text: strings.Join(msgs, "; "), errs: errs}
	}
	return g
}

// multiError joins the families' reasons on one line (errors.Join would
// use several), keeping errors.Is working on each.
type multiError struct {
	text string
	errs []error
}

func (e *multiError) Error() string   { return e.text }
func (e *multiError) Unwrap() []error { return e.errs }
