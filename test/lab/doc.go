// Package lab builds and tears down vipcast's network-namespace lab (the
// topology of ../shared/TESTBED.md) for the end-to-end scenarios
// (test/e2e), `make demo`, and hands-on use from the command line
// (test/lab/cmd: `go run ./test/lab/cmd up|status|down`).
//
//	             vc<id>-fab: bridge br0 (192.0.2.0/24, 2001:db8:0:1::/64)
//	   ┌──────────┬───────────┬──────────┬──────────┬──────────┬──────────┐
//	client .10   rtr .1      lb1 .2     lb2 .4     real1 .11  real2 .12  real3 .13
//	(and .20)    BIRD 2      vipcastd   vipcastd   decap XDP, VIPs on lo,
//	             kernel FIB  XDP+TC     (on demand) HTTP :80, UDP echo :9053
//
// Every name carries the lab id: namespaces vc<id>-<role>, pins under
// /sys/fs/bpf/vipcast-lab-<id>, files (configs, sockets, logs, lab.json)
// under /run/vipcast-lab/<id>. Remove(id) deletes all of them, whether or
// not the calling process built the lab.
//
// What the lab sets up, and why:
//   - The router runs BIRD with passive eBGP sessions (IPv4 and IPv6) to
//     both LBs, graceful restart on, and exports what it learns into its
//     kernel table (merged into ECMP routes when both LBs announce a VIP),
//     so the client reaches a VIP only while vipcastd announces it. The
//     router forwards with send_redirects and rp_filter off and hashes
//     ECMP on ports.
//   - Every host's default route points at the router; hosts ignore
//     redirects; IPv6 addresses skip DAD; TX checksum offload is off on
//     every veth end (TESTBED.md).
//   - The fabric end of each LB's veth has an XDP program that passes
//     everything: XDP_TX into a veth is dropped otherwise (TESTBED.md).
//   - The LB's veth receives through one threaded NAPI pinned to CPU 0 at
//     real-time priority: vipcast's connection tables are per CPU, and a
//     veth (no RSS) would otherwise run a flow's packets on whichever CPU
//     sent them (see pinLBReceive).
//   - The bridge does not call netfilter (bridge-nf-call-*), which would
//     check and drop malformed IP headers before they reach an LB.
//   - Reals are prepared with `vipcast real-setup` for every lab VIP and
//     run `vipcast-lab serve`; lab daemons run at nice -10.
//
// vipcastd's configuration is generated from DaemonConfig (health checks
// every 200 ms, rise 2, fall 2, no jitter, so timings are quick and
// predictable); scenarios change it with LB.Apply (write + reload).
package lab
