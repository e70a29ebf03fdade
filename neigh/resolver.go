package neigh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
)

// Options configure a Resolver. Only Interface is required.
type Options struct {
	// Interface is the interface the balancer is attached to; only default
	// routes through it count.
	Interface string
	// Static, when set, is the gateway MAC (the gateway_mac override):
	// nothing is looked up, no netlink socket is opened.
	Static net.HardwareAddr
	// Families to watch: IPv4, IPv6 or Both (the default, also for 0).
	Families Family
	// Table is the routing table holding the default routes; 0 means main.
	Table int

	// NetNS is the network namespace to work in; the Resolver keeps a
	// duplicate, so the caller may close its handle after New. The zero
	// value and netns.None() mean "not given".
	NetNS netns.NsHandle
	// NetNSPath is the namespace as a path (/run/netns/NAME,
	// /proc/PID/ns/net), an alternative to NetNS. With neither, the
	// Resolver works in the namespace of the thread that calls New.
	NetNSPath string

	// Logger gets one line per change of the gateway MAC; nil discards.
	Logger *slog.Logger

	// Retry is the first delay before retrying after a failure (netlink
	// error, unanswered probe, lost subscription); each further failure
	// doubles it up to MaxRetry. Defaults: 1 s and 30 s.
	Retry    time.Duration
	MaxRetry time.Duration
	// Refresh is how often a MAC the kernel does not vouch for (learned by
	// our own probe, or from a stale entry) is checked again, and how
	// often everything is re-read even without a notification. Default 30 s.
	Refresh time.Duration
	// ProbeAttempts ARP requests or neighbor solicitations are sent, each
	// waiting ProbeTimeout for an answer. Defaults: 3 and 1 s.
	ProbeAttempts int
	ProbeTimeout  time.Duration
}

const (
	defaultRetry         = time.Second
	defaultMaxRetry      = 30 * time.Second
	defaultRefresh       = 30 * time.Second
	defaultProbeAttempts = 3
	defaultProbeTimeout  = time.Second
	mainTable            = 254 // RT_TABLE_MAIN
)

func (o *Options) normalize() error {
	if o.Interface == "" && o.Static == nil {
		return errors.New("neigh: no interface given")
	}
	if len(o.Interface) > 15 {
		return fmt.Errorf("neigh: interface name %q longer than 15 characters", o.Interface)
	}
	if o.Static != nil && !validMAC(o.Static) {
		return fmt.Errorf("neigh: static gateway MAC %q: must be a 6-byte unicast, non-zero Ethernet address", o.Static)
	}
	if o.Families == 0 {
		o.Families = Both
	}
	if o.Families&^Both != 0 {
		return fmt.Errorf("neigh: families %s: must be IPv4, IPv6 or Both", o.Families)
	}
	if o.Table < 0 {
		return fmt.Errorf("neigh: routing table %d is negative", o.Table)
	}
	if o.Table == 0 {
		o.Table = mainTable
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Retry", &o.Retry, defaultRetry},
		{"MaxRetry", &o.MaxRetry, defaultMaxRetry},
		{"Refresh", &o.Refresh, defaultRefresh},
		{"ProbeTimeout", &o.ProbeTimeout, defaultProbeTimeout},
	} {
		if *d.v < 0 {
			return fmt.Errorf("neigh: %s %s is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.MaxRetry < o.Retry {
		o.MaxRetry = o.Retry
	}
	if o.ProbeAttempts < 0 {
		return fmt.Errorf("neigh: ProbeAttempts %d is negative", o.ProbeAttempts)
	}
	if o.ProbeAttempts == 0 {
		o.ProbeAttempts = defaultProbeAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Resolver finds and follows the gateway MAC of one interface. Create it
// with New, run it with Run, read it with Current or Updates, and Close it
// when done.
type Resolver struct {
	opts    Options
	log     *slog.Logger
	updates chan Gateway
	started atomic.Bool

	nsMu sync.Mutex
	ns   netns.NsHandle // owned; netns.None() for a static MAC or once closed

	mu        sync.Mutex
	cur       Gateway
	published bool

	// subscribed, when set (by tests), sees each new subscription.
	subscribed func(*subscription)
}

// New checks opts and prepares a Resolver; it does not touch the network
// except to take hold of the namespace (see Options.NetNS).
func New(opts Options) (*Resolver, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	r := &Resolver{
		opts:    opts,
		log:     opts.Logger.With("interface", opts.Interface),
		updates: make(chan Gateway, 1),
		ns:      netns.None(),
	}
	if opts.Static != nil {
		r.cur = Gateway{
			Interface: opts.Interface,
			MAC:       append(net.HardwareAddr(nil), opts.Static...),
			Source:    SourceStatic,
			Since:     time.Now(),
		}
		return r, nil
	}
	ns, err := openNamespace(&r.opts)
	if err != nil {
		return nil, fmt.Errorf("neigh: %s: %w", opts.Interface, err)
	}
	r.ns = ns
	var v4, v6 Hop
	if opts.Families&IPv4 != 0 {
		v4 = Hop{Family: IPv4, Err: ErrNotStarted}
	}
	if opts.Families&IPv6 != 0 {
		v6 = Hop{Family: IPv6, Err: ErrNotStarted}
	}
	r.cur = choose(opts.Interface, v4, v6)
	return r, nil
}

// Current returns the latest result. Before Run's first evaluation its
// Err is ErrNotStarted (a static MAC is known at once). Treat the MACs as
// read-only.
func (r *Resolver) Current() Gateway {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Updates delivers the result whenever the data-plane gateway changes: its
// MAC, next hop or family, or the reason it is unknown. The first result of
// Run is always delivered. The channel holds only the latest result (a slow
// reader skips intermediate ones, never sees stale ones, and never blocks
// Run) and is closed when Run returns.
func (r *Resolver) Updates() <-chan Gateway { return r.updates }

// Close releases the namespace handle. It may be called at any time, also
// while Run is running (Run works on its own duplicate); a Run started after
// Close fails.
func (r *Resolver) Close() error {
	r.nsMu.Lock()
	defer r.nsMu.Unlock()
	if !nsSet(r.ns) {
		return nil
	}
	err := r.ns.Close()
	r.ns = netns.None()
	return err
}

// Run resolves the gateway and follows it until ctx ends; it then returns
// nil after stopping every goroutine and closing every socket it started.
// Failures (no route, netlink errors, unanswered probes) are not returned:
// they are retried with backoff and reported in Gateway.Err. Run may be
// called once.
func (r *Resolver) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("neigh: Run called more than once")
	}
	defer close(r.updates)
	if r.opts.Static != nil {
		r.publish(r.Current())
		<-ctx.Done()
		return nil
	}
	r.nsMu.Lock()
	var (
		ns  netns.NsHandle
		err error
	)
	if nsSet(r.ns) {
		ns, err = dupNamespace(r.ns)
	} else {
		err = errors.New("resolver closed")
	}
	r.nsMu.Unlock()
	if err != nil {
		return fmt.Errorf("neigh: %s: %w", r.opts.Interface, err)
	}
	defer ns.Close()
	return newLoop(r, ns).run(ctx)
}

// publish makes g the current result and announces it if the data-plane
// view changed.
func (r *Resolver) publish(g Gateway) {
	now := time.Now()
	r.mu.Lock()
	changed := !r.published || !g.sameDataPlane(r.cur)
	if changed {
		g.Since = now
	} else {
		g.Since = r.cur.Since
	}
	r.cur, r.published = g, true
	r.mu.Unlock()
	if !changed {
		return
	}
	if g.MAC != nil {
		r.log.Info("gateway MAC", "mac", g.MAC.String(), "next_hop", g.IP.String(), "family", g.Family.String(), "source", g.Source)
	} else {
		r.log.Warn("gateway MAC unknown", "reason", errText(g.Err))
	}
	// Keep only the latest value in the one-slot channel. Run is the only
	// sender, so after emptying the slot the second send cannot fail.
	select {
	case r.updates <- g:
	default:
		select {
		case <-r.updates:
		default:
		}
		select {
		case r.updates <- g:
		default:
		}
	}
}
