// Package health checks whether reals serve their VIPs and reports when a
// real's health changes.
//
// # Path of a check
//
// Every network check (tcp, http, https, udp, icmp) is sent to VIP:port from
// an ordinary socket whose SO_MARK is the target's mark. On the LB, the TC
// healthcheck program maps that mark to the real and encapsulates the packet
// exactly like the balancer does, so a check passes only when the real
// serves the VIP through the tunnel; the reply comes back directly (DSR).
// With CheckSpec.Direct the check goes to the real's own address instead and
// carries no mark. An exec check runs a command and passes when it exits 0.
//
// # States
//
// A target is Down or Up. It starts Down and becomes Up after Rise
// consecutive passing checks; an Up target becomes Down after Fall
// consecutive failing checks. A target whose check type is "none" is never
// probed and is Up as soon as it runs. Operator states (draining, disabled)
// are not this package's business: the checker only reports health, and the
// daemon combines health with what the operator asked for.
//
// # UDP semantics
//
// UDP has no handshake, so CheckSpec.Expect says what counts as alive. The
// check's socket is connected to the checked address, so only a datagram
// from exactly that address and port counts as a reply: a real must answer
// from the VIP (bind it, or reply with the address it was asked at), as any
// UDP service behind direct server return must.
//
//   - "reply" (the default): the check sends Payload in one datagram and
//     passes when any datagram comes back from the checked address before
//     Timeout. An ICMP port unreachable fails it at once; silence fails it
//     at Timeout.
//   - "no-reply-within-timeout": the check sends Payload and fails only if an
//     ICMP port unreachable for it arrives before Timeout (the kernel turns it
//     into ECONNREFUSED on the connected socket). Silence until Timeout
//     passes, and so does a datagram that comes back early (the service
//     answered, which is better than silence). This suits services that never
//     answer a probe (syslog, many game or telemetry receivers), but it
//     cannot tell a dead host, a black hole or a filtering firewall from a
//     healthy service: pair it with an icmp or exec check when that matters.
//
// # Reporting
//
// A Checker emits an Event on its Events channel and logs one line
// (component=health) per state change, never per check. Per-check results
// (pass/fail, latency) go to Options.Observe for metrics, and Status returns
// a snapshot of every target.
package health
