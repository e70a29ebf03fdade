package neigh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// netlinkTimeout bounds every request on the netlink handle.
	netlinkTimeout = 5 * time.Second
	// minProbeGap keeps neighbour-state churn from turning into a probe
	// storm: a change of the kernel entry triggers a probe at most this often.
	minProbeGap = time.Second
	// drainTimeout bounds the wait for a closed subscription's goroutine.
	drainTimeout = 5 * time.Second
)

// loop is the state of one Run: only its goroutine touches it, except the
// probe goroutines, which report through probeDone.
type loop struct {
	r   *Resolver
	o   *Options
	log *slog.Logger
	ns  netns.NsHandle

	h        *netlink.Handle
	sub      *subscription
	subAt    time.Time // when to try subscribing again
	subSince time.Time // when the current subscription started
	subWait  backoff
	retry    backoff // re-evaluation after a failed one

	ifindex int // of the interface at the last evaluation, 0 if unknown
	fams    []*famState

	probeDone chan probeResult
	probes    sync.WaitGroup
	probeSeq  uint64
}

// famState is what the loop remembers about one family between evaluations.
type famState struct {
	fam   Family
	hop   Hop
	probe probeState
	// table is the kernel entry of probe.target at the last evaluation;
	// tableMAC the last MAC it carried.
	table    neighbour
	tableMAC net.HardwareAddr
	seen     bool
}

// probeState is the active resolution of one family's next hop.
type probeState struct {
	target   netip.Addr
	mac      net.HardwareAddr // last answer, nil if none or superseded
	err      error            // last failure, nil after an answer
	at       time.Time        // when the last probe finished
	next     time.Time        // when a probe is due again
	failures int
	inFlight bool
	kick     bool // the kernel entry changed: probe again soon
	// seq identifies the probe in flight; cancel stops it.
	seq    uint64
	cancel context.CancelFunc
}

type probeResult struct {
	fs  *famState
	seq uint64
	mac net.HardwareAddr
	err error
}

func newLoop(r *Resolver, ns netns.NsHandle) *loop {
	l := &loop{
		r:       r,
		o:       &r.opts,
		log:     r.log,
		ns:      ns,
		subWait: backoff{min: r.opts.Retry, max: r.opts.MaxRetry},
		retry:   backoff{min: r.opts.Retry, max: r.opts.MaxRetry},
	}
	for _, f := range []Family{IPv4, IPv6} {
		if r.opts.Families&f != 0 {
			l.fams = append(l.fams, &famState{fam: f, hop: Hop{Family: f, Err: ErrNotStarted}})
		}
	}
	l.probeDone = make(chan probeResult, len(l.fams))
	return l
}

func (l *loop) run(ctx context.Context) error {
	probeCtx, cancelProbes := context.WithCancel(ctx)
	defer func() {
		cancelProbes()
		l.probes.Wait()
		l.unsubscribe()
		l.closeHandle()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	dirty := true
	for {
		now := time.Now()
		if l.sub == nil && !now.Before(l.subAt) {
			if err := l.subscribe(); err != nil {
				wait := l.subWait.next()
				l.subAt = now.Add(wait)
				l.log.Warn("subscribe to netlink notifications", "err", err, "retry_in", wait)
			} else {
				l.subSince = now
				dirty = true // whatever changed before the subscription
			}
		}
		if dirty {
			l.drainEvents()
			wake := l.evaluate(probeCtx, now)
			if l.sub == nil && l.subAt.Before(wake) {
				wake = l.subAt
			}
			timer.Reset(max(time.Until(wake), 0))
			dirty = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			dirty = true
		case res := <-l.probeDone:
			l.probeFinished(res)
			dirty = true
		case u, ok := <-l.sub.routeC():
			dirty = l.event(ok, "route") || l.routeRelevant(u)
		case u, ok := <-l.sub.neighC():
			dirty = l.event(ok, "neighbour") || l.neighRelevant(u)
		case u, ok := <-l.sub.linkC():
			dirty = l.event(ok, "link") || l.linkRelevant(u)
		case u, ok := <-l.sub.addrC():
			dirty = l.event(ok, "address") || l.addrRelevant(u)
		case <-l.sub.errC():
			// A subscription reported trouble; re-read everything in
			// case notifications were lost. Fatal errors also close
			// the channel, handled above.
			dirty = true
		}
	}
}

// event handles a subscription channel's state: closed means the
// subscription died (socket error, ENOBUFS overrun, ...). All of them are
// then torn down and opened again, and the state is re-read because
// notifications may have been lost. It reports whether to re-evaluate.
func (l *loop) event(ok bool, what string) bool {
	if ok {
		return false
	}
	l.unsubscribe()
	now := time.Now()
	// A subscription that lived long enough was healthy: start the
	// backoff over. One that dies at once keeps backing off.
	if now.Sub(l.subSince) > l.o.MaxRetry {
		l.subWait.reset()
	}
	wait := l.subWait.next()
	l.subAt = now.Add(wait)
	l.log.Warn("netlink subscription ended; subscribing again", "subscription", what, "retry_in", wait)
	return true
}

// drainEvents takes the notifications already queued, so that a burst
// leads to one evaluation (which re-reads everything anyway); a closed
// channel among them is handled like in the main loop.
func (l *loop) drainEvents() {
	for l.sub != nil {
		select {
		case _, ok := <-l.sub.routes:
			if !ok {
				l.event(false, "route")
			}
		case _, ok := <-l.sub.neighs:
			if !ok {
				l.event(false, "neighbour")
			}
		case _, ok := <-l.sub.links:
			if !ok {
				l.event(false, "link")
			}
		case _, ok := <-l.sub.addrs:
			if !ok {
				l.event(false, "address")
			}
		case <-l.sub.errs:
		default:
			return
		}
	}
}

func (l *loop) routeRelevant(u netlink.RouteUpdate) bool {
	if !isDefault(u.Dst) || (u.Table != 0 && u.Table != l.o.Table) {
		return false
	}
	switch u.Family {
	case netlink.FAMILY_V4:
		return l.o.Families&IPv4 != 0
	case netlink.FAMILY_V6:
		return l.o.Families&IPv6 != 0
	}
	return true
}

func (l *loop) neighRelevant(u netlink.NeighUpdate) bool {
	if l.ifindex == 0 {
		return true
	}
	if u.LinkIndex != l.ifindex {
		return false
	}
	ip, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return false
	}
	for _, fs := range l.fams {
		if fs.probe.target == ip.Unmap() {
			return true
		}
	}
	return false
}

func (l *loop) linkRelevant(u netlink.LinkUpdate) bool {
	return int(u.Index) == l.ifindex || (u.Link != nil && u.Link.Attrs().Name == l.o.Interface)
}

func (l *loop) addrRelevant(u netlink.AddrUpdate) bool {
	return l.ifindex == 0 || u.LinkIndex == l.ifindex
}

// handle returns the netlink handle, opening it in the namespace if needed.
func (l *loop) handle() (*netlink.Handle, error) {
	if l.h != nil {
		return l.h, nil
	}
	var h *netlink.Handle
	err := withSocketNS(l.ns, func(ns netns.NsHandle) (err error) {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink timeout: %w", err)
	}
	l.h = h
	return h, nil
}

// closeHandle drops the handle after an error, so that the next
// evaluation starts with fresh sockets.
func (l *loop) closeHandle() {
	if l.h != nil {
		l.h.Close()
		l.h = nil
	}
}

// evaluate re-reads the kernel state, starts the probes that are due,
// publishes the result and returns when to evaluate again at the latest.
func (l *loop) evaluate(ctx context.Context, now time.Time) time.Time {
	wake := now.Add(l.o.Refresh)
	healthy := true
	// lost: the interface is gone, which invalidates every next hop.
	lost := func(err error) {
		l.ifindex = 0
		for _, fs := range l.fams {
			fs.forget()
			fs.hop = Hop{Family: fs.fam, Err: err}
		}
		healthy = false
	}
	// broken: netlink itself failed (timeout, socket error, dumps
	// interrupted again and again). That says nothing about the gateway,
	// so a known MAC stays; the handle is reopened for the retry.
	broken := func(err error) {
		l.log.Warn("read routes and neighbours", "err", err)
		l.closeHandle()
		for _, fs := range l.fams {
			fs.failed(err)
		}
		healthy = false
	}
	if h, err := l.handle(); err != nil {
		broken(err)
	} else if link, err := h.LinkByName(l.o.Interface); err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			lost(reason(ErrNoInterface, "interface %s not found", l.o.Interface))
		} else {
			broken(fmt.Errorf("look up interface %s: %w", l.o.Interface, err))
		}
	} else {
		l.ifindex = link.Attrs().Index
		for _, fs := range l.fams {
			due, err := l.evaluateFamily(ctx, h, link, fs, now)
			if err != nil {
				broken(err) // covers the other family too
				break
			}
			if !due.IsZero() && due.Before(wake) {
				wake = due
			}
		}
	}
	// Without a failure the next read is due at Refresh at the latest (a
	// safety net under the notifications), or when a probe is.
	if healthy {
		l.retry.reset()
	} else if w := now.Add(l.retry.next()); w.Before(wake) {
		wake = w
	}

	var v4, v6 Hop
	settling := false
	for _, fs := range l.fams {
		if fs.fam == IPv4 {
			v4 = fs.hop
		} else {
			v6 = fs.hop
		}
		settling = settling || errors.Is(fs.hop.Err, ErrResolving)
	}
	// A first probe of a new next hop answers within milliseconds or
	// fails within ProbeAttempts×ProbeTimeout; until then keep the last
	// result rather than announce a transient "unknown" the daemon would
	// act on. The probe's end triggers the next evaluation.
	if !settling {
		l.r.publish(choose(l.o.Interface, v4, v6))
	}
	return wake
}

// forget drops everything known about the family's next hop and stops
// its probe.
func (fs *famState) forget() {
	if fs.probe.cancel != nil {
		fs.probe.cancel()
	}
	fs.probe = probeState{}
	fs.table, fs.tableMAC, fs.seen = neighbour{}, nil, false
}

// failed records a netlink failure for the family: a known MAC is kept,
// an unknown one gets the failure as its reason.
func (fs *famState) failed(err error) {
	if !fs.hop.Known() {
		fs.hop = Hop{Family: fs.fam, Err: err}
	}
}

// evaluateFamily computes one family's Hop. It returns when a probe will
// be due (zero if none is wanted), and an error if netlink failed, in
// which case the Hop is left to the caller.
func (l *loop) evaluateFamily(ctx context.Context, h *netlink.Handle, link netlink.Link, fs *famState, now time.Time) (time.Time, error) {
	attrs := link.Attrs()
	nh, err := defaultNextHop(h, fs.fam, l.o.Table, attrs)
	if errors.Is(err, ErrNoRoute) {
		fs.forget()
		fs.hop = Hop{Family: fs.fam, Err: err}
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	if nh.ip != fs.probe.target {
		fs.forget()
		fs.probe.target = nh.ip
	}
	entry, err := lookupNeighbour(h, attrs.Index, nh.ip)
	if err != nil {
		return time.Time{}, err
	}
	if !fs.seen || entry.state != fs.table.state || !bytes.Equal(entry.mac, fs.table.mac) {
		// The kernel learned something: a new MAC is newer than any
		// answer to our probes, and a non-confirmed state is worth
		// checking ourselves.
		if entry.usable() && !bytes.Equal(entry.mac, fs.tableMAC) {
			fs.tableMAC = entry.mac
			fs.probe.mac = nil
		}
		if fs.seen && !entry.authoritative() {
			fs.probe.kick = true
		}
		fs.table, fs.seen = entry, true
	}

	proto := SourceARP
	if !nh.ip.Is4() {
		proto = SourceNDP
	}
	var due time.Time
	if !entry.authoritative() {
		p := &fs.probe
		if !p.inFlight && (p.at.IsZero() || !now.Before(p.next) || (p.kick && now.Sub(p.at) >= minProbeGap)) {
			l.startProbe(ctx, h, link, fs, now)
		}
		if !p.inFlight {
			due = p.next
			if p.kick && p.at.Add(minProbeGap).Before(due) {
				due = p.at.Add(minProbeGap)
			}
		}
	} else {
		fs.probe.failures, fs.probe.err = 0, nil
	}

	hop := Hop{Family: fs.fam, IP: nh.ip, Metric: nh.metric, State: stateName(entry.state)}
	switch {
	case entry.authoritative():
		hop.MAC, hop.Source = entry.mac, SourceTable
	case entry.usable() && fs.probe.mac != nil:
		hop.MAC, hop.Source = fs.probe.mac, proto
	case entry.usable():
		hop.MAC, hop.Source = entry.mac, SourceTable
	case fs.probe.mac != nil:
		hop.MAC, hop.Source = fs.probe.mac, proto
	case fs.probe.err != nil:
		hop.Err = fs.probe.err
	case fs.hop.IP == nh.ip && fs.hop.MAC != nil:
		// The entry went away (flushed, garbage-collected) while a
		// probe re-resolves it: keep the MAC we had.
		hop.MAC, hop.Source = fs.hop.MAC, fs.hop.Source
	default:
		hop.Err = reason(ErrResolving, "resolving %s on %s by %s", nh.ip, attrs.Name, protocolFor(familyOf(nh.ip)))
	}
	fs.hop = hop
	return due, nil
}

// startProbe resolves the family's next hop in the background; the result
// comes back on probeDone.
func (l *loop) startProbe(ctx context.Context, h *netlink.Handle, link netlink.Link, fs *famState, now time.Time) {
	p := &fs.probe
	p.kick = false
	attrs := link.Attrs()
	src, err := sourceAddress(h, link, p.target)
	if err == nil && !validMAC(attrs.HardwareAddr) {
		err = fmt.Errorf("interface %s has no Ethernet address to send %s from", attrs.Name, protocolFor(familyOf(p.target)))
	}
	if err != nil {
		l.probeFailed(fs, err, now)
		return
	}
	pr := probe{
		ns:       l.ns,
		ifindex:  attrs.Index,
		ifname:   attrs.Name,
		ifmac:    attrs.HardwareAddr,
		src:      src,
		target:   p.target,
		attempts: l.o.ProbeAttempts,
		timeout:  l.o.ProbeTimeout,
	}
	ctx, cancel := context.WithCancel(ctx)
	l.probeSeq++
	p.inFlight, p.seq, p.cancel = true, l.probeSeq, cancel
	res := probeResult{fs: fs, seq: p.seq}
	l.probes.Add(1)
	go func() {
		defer l.probes.Done()
		pr.resolve(ctx, func(mac net.HardwareAddr, err error) {
			res.mac, res.err = mac, err
			// The loop reads probeDone until Run ends, and ctx ends
			// with Run (or when the probe was superseded).
			select {
			case l.probeDone <- res:
			case <-ctx.Done():
			}
		})
	}()
}

func (l *loop) probeFinished(res probeResult) {
	fs, now := res.fs, time.Now()
	if !fs.probe.inFlight || res.seq != fs.probe.seq {
		return // superseded: the next hop changed meanwhile
	}
	fs.probe.cancel()
	fs.probe.inFlight, fs.probe.cancel = false, nil
	if errors.Is(res.err, context.Canceled) {
		return // Run is ending
	}
	if res.err != nil {
		l.probeFailed(fs, res.err, now)
		return
	}
	p := &fs.probe
	if !bytes.Equal(p.mac, res.mac) {
		l.log.Debug("next hop answered", "next_hop", p.target.String(), "mac", res.mac.String())
	}
	p.mac, p.err, p.failures = res.mac, nil, 0
	p.at, p.next = now, now.Add(l.o.Refresh)
}

func (l *loop) probeFailed(fs *famState, err error, now time.Time) {
	p := &fs.probe
	p.mac, p.err = nil, err
	p.failures++
	b := backoff{min: l.o.Retry, max: l.o.MaxRetry, n: p.failures - 1}
	wait := b.next()
	p.at, p.next = now, now.Add(wait)
	l.log.Debug("active resolution failed", "next_hop", p.target.String(), "err", err, "retry_in", wait)
}

// backoff doubles a delay from min up to max.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	b.n++
	return min(d, b.max)
}

func (b *backoff) reset() { b.n = 0 }
