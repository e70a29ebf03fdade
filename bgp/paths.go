package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

func apiFamily(prefix netip.Prefix) *api.Family {
	if prefix.Addr().Is4() {
		return familyV4
	}
	return familyV6
}

// checkVIPPrefix accepts host routes only: a VIP is one address, and an
// LB that announced a covering prefix would attract traffic it cannot
// serve.
func checkVIPPrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("bgp: invalid prefix %v", p)
	case p.Addr().Is4In6():
		return fmt.Errorf("bgp: prefix %s is IPv4-mapped; announce %s/32", p, p.Addr().Unmap())
	case p.Addr().Zone() != "":
		return fmt.Errorf("bgp: prefix %s has a zone", p)
	case p.Bits() != p.Addr().BitLen():
		return fmt.Errorf("bgp: prefix %s is not a host route (/32 or /128)", p)
	case p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast():
		return fmt.Errorf("bgp: prefix %s is not a unicast VIP address", p)
	}
	return nil
}

// effective merges per-VIP Attrs over the Config defaults; the result has
// every list resolved (never nil) so it can be compared and shown.
func effective(cfg Config, a Attrs) Attrs {
	out := Attrs{
		Communities:      slices.Clone(cfg.Communities),
		LargeCommunities: slices.Clone(cfg.LargeCommunities),
		MED:              cfg.MED,
		LocalPref:        cfg.LocalPref,
		Prepend:          a.Prepend,
	}
	if a.Communities != nil {
		out.Communities = slices.Clone(a.Communities)
	}
	if a.LargeCommunities != nil {
		out.LargeCommunities = slices.Clone(a.LargeCommunities)
	}
	if a.MED != nil {
		out.MED = a.MED
	}
	if a.LocalPref != nil {
		out.LocalPref = a.LocalPref
	}
	if out.Communities == nil {
		out.Communities = []string{}
	}
	if out.LargeCommunities == nil {
		out.LargeCommunities = []string{}
	}
	return out
}

func equalAttrs(a, b Attrs) bool {
	eqp := func(x, y *uint32) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities) &&
		eqp(a.MED, b.MED) && eqp(a.LocalPref, b.LocalPref) && a.Prepend == b.Prepend
}

func nextHopFor(cfg Config, prefix netip.Prefix) netip.Addr {
	if prefix.Addr().Is4() {
		return cfg.NextHopV4
	}
	return cfg.NextHopV6
}

// buildPath turns a VIP and its effective attributes into GoBGP's API path.
// An unset next hop goes out as 0.0.0.0 / ::, which GoBGP replaces with
// the session's local address for every peer (next-hop-self).
func buildPath(asn uint32, prefix netip.Prefix, nextHop netip.Addr, a Attrs, withdraw bool) (*api.Path, error) {
	addr := prefix.Addr()
	var nlri gobgp.AddrPrefixInterface
	var nh gobgp.PathAttributeInterface
	if addr.Is4() {
		nlri = gobgp.NewIPAddrPrefix(uint8(prefix.Bits()), addr.String())
		h := "0.0.0.0"
		if nextHop.IsValid() {
			h = nextHop.String()
		}
		nh = gobgp.NewPathAttributeNextHop(h)
	} else {
		nlri = gobgp.NewIPv6AddrPrefix(uint8(prefix.Bits()), addr.String())
		h := "::"
		if nextHop.IsValid() {
			h = nextHop.String()
		}
		nh = gobgp.NewPathAttributeMpReachNLRI(h, []gobgp.AddrPrefixInterface{nlri})
	}
	attrs := []gobgp.PathAttributeInterface{
		gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		nh,
	}
	if a.Prepend > 0 {
		seq := make([]uint32, a.Prepend)
		for i := range seq {
			seq[i] = asn
		}
		attrs = append(attrs, gobgp.NewPathAttributeAsPath([]gobgp.AsPathParamInterface{
			gobgp.NewAs4PathParam(gobgp.BGP_ASPATH_ATTR_TYPE_SEQ, seq),
		}))
	}
	comms, err := parseCommunities(a.Communities)
	if err != nil {
		return nil, err
	}
	if len(comms) > 0 {
		attrs = append(attrs, gobgp.NewPathAttributeCommunities(comms))
	}
	large, err := parseLargeCommunities(a.LargeCommunities)
	if err != nil {
		return nil, err
	}
	if len(large) > 0 {
		attrs = append(attrs, gobgp.NewPathAttributeLargeCommunities(large))
	}
	if a.MED != nil {
		attrs = append(attrs, gobgp.NewPathAttributeMultiExitDisc(*a.MED))
	}
	if a.LocalPref != nil {
		attrs = append(attrs, gobgp.NewPathAttributeLocalPref(*a.LocalPref))
	}
	return apiutil.NewPath(nlri, withdraw, attrs, time.Now())
}
