// Package neigh finds the MAC address of the load balancer's gateway: the
// L2 next hop the XDP balancer writes into every encapsulated frame it
// sends back out of the interface.
//
// A Resolver watches one interface. With a static MAC (the
// gateway_mac override) it reports that and touches nothing. Otherwise it
//
//  1. reads the default routes of the routing table (main by default) for
//     IPv4 and IPv6, keeps those whose output interface is the watched one
//     (including the matching legs of multipath routes), and picks the one
//     with the lowest metric; its gateway is the family's next hop;
//  2. looks the next hop up in the kernel neighbour table of that
//     interface;
//  3. resolves it actively with ARP (IPv4) or NDP (IPv6) when the entry is
//     missing, incomplete, failed or only stale, and re-checks an actively
//     resolved MAC every Options.Refresh, because the kernel table does not
//     follow a gateway it never talks to itself (XDP_TX bypasses it);
//  4. subscribes to route, neighbour, link and address notifications and
//     re-reads the state whenever one concerns it, so a replaced gateway,
//     a moved default route or a neighbour entry that changed its MAC is
//     followed within milliseconds. IPv4 routes that die with their device
//     or address are flushed by the kernel without a route notification,
//     hence the link and address subscriptions.
//
// # One MAC for the data plane
//
// The data plane has a single gateway MAC for all encapsulated frames,
// whatever their outer family. When both families have a default route via
// the interface and their next hops differ, IPv4's wins if its MAC is known;
// otherwise IPv6's. Both are reported in Gateway.IPv4 and Gateway.IPv6 for
// `vipcast gateway`.
//
// # Which neighbour entries are trusted
//
// PERMANENT, NOARP and REACHABLE entries are taken as they are. STALE,
// DELAY and PROBE entries carry the kernel's last confirmed MAC: it is used
// at once, an active probe is sent, and a different answer from the gateway
// replaces it. An unanswered probe does not discard a stale MAC, since the
// kernel would still use it too; a missing, INCOMPLETE or FAILED entry that
// no probe answers makes the family's MAC unknown, with the reason in
// Gateway.Err.
//
// # Failures and retries
//
//   - No default route through the interface, or no interface: the MAC is
//     unknown at once, with the reason (ErrNoRoute, ErrNoInterface). A
//     route or link notification ends that; the state is also re-read every
//     Refresh as a safety net.
//   - The next hop does not answer: unknown after ProbeAttempts ×
//     ProbeTimeout (ErrUnanswered); probed again after Retry, doubling up
//     to MaxRetry.
//   - While the first probe of a new next hop runs (a millisecond when it
//     answers), the previous result stays published rather than a
//     transient "unknown" the daemon would act on.
//   - netlink fails (socket error, timeout, a dump interrupted
//     (NLM_F_DUMP_INTR, netlink.ErrDumpInterrupted) five times in a row):
//     a known MAC stays, the handle is reopened and the read retried with
//     the same backoff. A subscription that ends (ENOBUFS overrun, socket
//     error) is opened again with backoff and everything is re-read,
//     since notifications may have been lost.
//
// # Network namespaces
//
// Everything works on behalf of the namespace given in Options (or the one
// the goroutine calling New is in), whatever namespace the goroutines
// running the Resolver are in. A socket belongs to the namespace it was
// created in for its whole life, so only creation needs care:
//   - netlink sockets (the request handle and the four subscriptions) are
//     opened by vishvananda/netlink's NewHandleAt and Subscribe options,
//     which enter the namespace on a locked thread and come back;
//   - the AF_PACKET socket for ARP and the raw ICMPv6 socket for NDP are
//     created by a goroutine locked to a fresh OS thread that setns()es into
//     the namespace, creates the socket and exits still locked, so that
//     thread is destroyed instead of returning to the scheduler in the wrong
//     namespace.
//
// All later I/O happens on ordinary goroutines. The package never resolves
// interface names or IPv6 zones through the net package: its interface
// table and zone cache are process-wide and filled from whichever namespace
// the current thread happens to be in. Interface facts come from the
// namespace-bound netlink handle and sockets are bound by index.
package neigh
