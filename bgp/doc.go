// Package bgp is vipcast's BGP speaker: an embedded GoBGP v3 server that
// announces each VIP as a /32 or /128 host route while the daemon says so,
// and accepts nothing from its peers.
//
// The daemon drives it with plain values (Config, netip.Prefix, Attrs) and
// never hands it anything from lb, health, neigh or config; this package
// imports none of them. Decide (with HoldDown) is the announce policy as a
// pure function, for the daemon to apply to health results.
//
// # Routes
//
// Announce/Withdraw are idempotent. Next hop defaults to the local address
// of each session (next-hop-self): the path carries 0.0.0.0 or ::, which
// GoBGP rewrites per peer. BIRD accepts that address as the gateway on the
// shared link (tested). An IPv6 VIP sent over an IPv4 session (or the
// reverse) has no such address, so Config.NextHopV6/V4 must be set then;
// Validate insists. LOCAL_PREF goes to iBGP peers only (GoBGP strips it for
// eBGP); MED and communities go everywhere.
//
// # Nothing is imported
//
// The global import policy accepts locally originated paths and rejects
// all else (GoBGP applies the global import policy to local paths too,
// hence the explicit accept-local statement). Routes a router sends still
// sit in GoBGP's per-peer, pre-policy Adj-RIB-In (PeerStatus.
// PrefixesReceived counts them; GoBGP has no switch to drop them), but
// never reach the RIB, the FIB, or another peer. Configure routers to send
// an LB nothing, or a default route at most.
//
// # Shutdown and restart
//
// Stop is the shutdown path: it withdraws every VIP, waits until GoBGP has
// written the withdrawals to every established session (GoBGP drops
// messages still queued when it tears a session down), then closes the
// sessions with a Cease. Peers therefore drop the routes before the
// session goes, and traffic shifts to other LBs without waiting for hold
// timers.
//
// A hitless restart under GracefulRestart must not call Stop: the old
// process exits (the kernel closes its sessions without a NOTIFICATION,
// so GR peers keep the routes as stale for RestartTime) and the new one
// starts with Config.Restarting, which sets the Restart State bit. GoBGP
// then waits for the peers' End-of-RIB before sending; the peer replaces
// the stale routes and flushes those not re-announced.
//
// # GoBGP's fatal paths
//
// GoBGP's default logger exits the process on Fatal; the gRPC API's listen
// failure, for one, is reported that way from a goroutine. vipcast passes
// its own logger (slogAdapter, component=bgp), which logs such calls at
// ERROR with gobgp_fatal=true and delivers them on Speaker.Errors()
// instead; Start additionally proves the API address free and waits until
// the API accepts connections, so a bad API address is Start's error. The
// list of call sites is on slogAdapter.
//
// # Network namespaces
//
// GoBGP creates its sockets later, on goroutines of its own; a socket
// belongs to the network namespace of the OS thread that creates it. Run
// the speaker in a process that lives in the intended namespace (the tests
// re-execute the test binary under nsenter), never from a thread that
// entered one with setns.
package bgp
