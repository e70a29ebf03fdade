package metrics

import (
	"log/slog"
	"net/netip"

	"vipcast/lb"
)

// DataPlane is what the collector reads from the balancer; *lb.Balancer
// implements it.
type DataPlane interface {
	Stats() (lb.Stats, error)
	// Counters lists the VIPs and reals with their counters, read in one
	// pass (see lb.Balancer.Counters).
	Counters() ([]lb.VIPCounters, error)
	// VIPs lists the VIPs and reals without counters. It is used when
	// Counters fails, so that the reals' states are still reported.
	VIPs() []lb.VIPInfo
	ConnTables() (tables []lb.ConnTable, bytes uint64)
}

// HealthcheckStats reads the counters of the healthcheck encapsulation
// program; *lb.Healthcheck implements it.
type HealthcheckStats interface {
	Stats() (lb.HealthcheckStats, error)
}

// RealHealth is the health checker's verdict on one real of one VIP.
type RealHealth struct {
	VIP     lb.VIPKey
	Real    netip.Addr
	Healthy bool
}

// PeerState is the session state of one BGP peer.
type PeerState struct {
	Peer string // the peer's address, as configured
	Up   bool   // session established
}

// Source is everything the collector reads, each part at scrape time.
// Only DataPlane is required; a nil part leaves its metrics out (a daemon
// without BGP has no vipcast_bgp_peer_up, rather than a false 0).
type Source struct {
	DataPlane   DataPlane
	Healthcheck HealthcheckStats
	// RealHealth lists the reals that are health-checked, with the latest
	// verdict. Reals that are not checked (checking is off, or the
	// operator disabled them) are left out.
	RealHealth func() []RealHealth
	// Announced lists the VIP addresses currently announced over BGP.
	Announced func() []netip.Addr
	// Peers lists the configured BGP peers.
	Peers func() []PeerState
	// GatewayKnown tells whether the gateway MAC is known (without it, VIP
	// traffic is dropped).
	GatewayKnown func() bool
	// BuildVersion is the release this binary was built from.
	BuildVersion string
	// Logger, when set, gets one line each time a part of the data plane
	// starts or stops failing to be read; never one per scrape.
	Logger *slog.Logger
}
