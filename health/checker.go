package health

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"
)

// ErrStopped is returned by Set and Run once Run has returned.
var ErrStopped = errors.New("health checker stopped")

// Default options.
const (
	DefaultJitter      = 0.1
	DefaultEventBuffer = 256
	maxJitter          = 0.5
)

// Options configure a Checker.
type Options struct {
	Logger *slog.Logger // nil: discard
	// Observe, when set, is called after every completed check, from the
	// target's goroutine: it must be quick (a histogram update).
	Observe func(targetID string, ok bool, latency time.Duration)
	// EventBuffer is the capacity of the Events channel (default 256).
	// Events are queued without bound inside the checker, so a slow reader
	// never delays checks.
	EventBuffer int
	// Jitter is the fraction of the interval by which every wait between two
	// checks of a target is randomly lengthened or shortened (default 0.1,
	// at most 0.5; negative: none). First checks are spread uniformly over
	// one interval regardless.
	Jitter float64
	// RootCAs verify HTTPS checks; nil means the system's roots.
	RootCAs *x509.CertPool
	// ExecEnv is the environment of exec checks, to which the VIPCAST_*
	// variables are added; nil means only a standard PATH.
	ExecEnv []string

	// seed, when not zero, makes the schedule reproducible (tests).
	seed uint64
}

// Event tells that a target changed state.
type Event struct {
	TargetID string
	VIP      netip.AddrPort
	Proto    string
	Real     netip.Addr
	Mark     uint32
	State    State
	Previous State
	Reason   string
	// Latency is that of the deciding check (0 for a target without checks).
	Latency time.Duration
	At      time.Time
}

// Status is a snapshot of one target.
type Status struct {
	TargetID string
	VIP      netip.AddrPort
	Proto    string
	Real     netip.Addr
	Mark     uint32
	Type     CheckType
	State    State
	Since    time.Time // when State was entered (or the target added)

	Checks      uint64    // checks completed
	LastCheck   time.Time // start of the last completed check; zero before the first
	LastOK      bool
	LastError   string // empty when the last check passed
	LastLatency time.Duration
	Successes   int // consecutive passes
	Failures    int // consecutive failures
}

// Checker checks a set of targets, each in its own goroutine, and reports
// state changes. Set may be called before and while Run runs.
type Checker struct {
	log     *slog.Logger
	observe func(string, bool, time.Duration)
	jitter  float64
	env     probeEnv
	events  chan Event
	notify  chan struct{} // wakes the event dispatcher; capacity 1

	mu      sync.Mutex
	targets map[string]*entry
	rng     *rand.Rand // seeds of the targets' schedules
	ctx     context.Context
	stopped bool
	queue   []Event
	wg      sync.WaitGroup // target goroutines
}

// entry is the checker's record of one target; guarded by Checker.mu.
type entry struct {
	target Target
	probe  probe // nil for type none
	m      machine
	since  time.Time

	checks      uint64
	lastCheck   time.Time
	lastErr     error
	lastLatency time.Duration

	// gen identifies the goroutine allowed to report for this entry; a
	// result from an older one (stopped by Set) is dropped.
	gen    uint64
	cancel context.CancelFunc
}

// New returns a Checker without targets.
func New(opts Options) *Checker {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	jitter := opts.Jitter
	switch {
	case jitter == 0:
		jitter = DefaultJitter
	case jitter < 0:
		jitter = 0
	case jitter > maxJitter:
		jitter = maxJitter
	}
	buffer := opts.EventBuffer
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	seed := opts.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Checker{
		log:     log.With("component", "health"),
		observe: opts.Observe,
		jitter:  jitter,
		env:     probeEnv{rootCAs: opts.RootCAs, execEnv: opts.ExecEnv},
		events:  make(chan Event, buffer),
		notify:  make(chan struct{}, 1),
		targets: make(map[string]*entry),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// Events delivers state changes in the order they happened for each target.
// It is closed when Run returns; keep reading it while Run runs.
func (c *Checker) Events() <-chan Event { return c.events }

// Set makes targets the checked set: new targets start Down, removed ones
// stop, and targets whose mark or check changed restart their checks but
// keep their state (their consecutive counts restart). A target whose VIP,
// protocol or real changed under the same ID starts over, Down. Set
// validates every target first and changes nothing on error.
func (c *Checker) Set(targets []Target) error {
	want := make(map[string]Target, len(targets))
	initial := make(map[string]State, len(targets))
	order := make([]string, 0, len(targets))
	for _, t := range targets {
		nt, err := t.normalize()
		if err != nil {
			return err
		}
		if _, dup := want[nt.ID]; dup {
			return fmt.Errorf("target %q: listed twice: %w", nt.ID, ErrInvalid)
		}
		// Initial only seeds a new entry; it is not part of the target's
		// identity and must not restart a running one.
		initial[nt.ID], nt.Initial = nt.Initial, Down
		want[nt.ID] = nt
		order = append(order, nt.ID)
	}

	var changes []Event
	defer func() { c.logChanges(changes) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	now := time.Now()
	for id, e := range c.targets {
		if _, ok := want[id]; !ok {
			c.stopLocked(e)
			delete(c.targets, id)
		}
	}
	for _, id := range order {
		t := want[id]
		e, ok := c.targets[id]
		switch {
		case !ok:
			e = &entry{target: t, since: now}
			e.m.state = initial[id]
			c.targets[id] = e
		case reflect.DeepEqual(e.target, t):
			continue // untouched: keeps its schedule
		case e.target.VIP != t.VIP || e.target.Proto != t.Proto || e.target.Real != t.Real:
			c.stopLocked(e)
			prev := e.m.state
			e = &entry{target: t, since: now}
			c.targets[id] = e
			if prev != Down {
				changes = append(changes, c.changeLocked(e, prev, "target redefined: VIP, protocol or real changed", 0, now))
			}
		default:
			c.stopLocked(e)
			e.target = t
			e.m.successes, e.m.failures = 0, 0
		}
		e.probe = newProbe(t, c.env)
		if c.ctx != nil {
			if ev, ok := c.startLocked(e); ok {
				changes = append(changes, ev)
			}
		}
	}
	return nil
}

// Status returns a snapshot of every target, ordered by ID.
func (c *Checker) Status() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.targets))
	for _, e := range c.targets {
		t := e.target
		st := Status{
			TargetID:    t.ID,
			VIP:         t.VIP,
			Proto:       t.Proto,
			Real:        t.Real,
			Mark:        t.Mark,
			Type:        t.Spec.Type,
			State:       e.m.state,
			Since:       e.since,
			Checks:      e.checks,
			LastCheck:   e.lastCheck,
			LastOK:      e.checks > 0 && e.lastErr == nil,
			LastLatency: e.lastLatency,
			Successes:   e.m.successes,
			Failures:    e.m.failures,
		}
		if e.lastErr != nil {
			st.LastError = e.lastErr.Error()
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.TargetID, b.TargetID) })
	return out
}

// Run checks the targets until ctx ends, then stops every goroutine it
// started, closes Events and returns nil. A Checker runs once.
func (c *Checker) Run(ctx context.Context) error {
	var changes []Event
	c.mu.Lock()
	if c.stopped || c.ctx != nil {
		c.mu.Unlock()
		return fmt.Errorf("run: %w", ErrStopped)
	}
	c.ctx = ctx
	for _, e := range c.targets {
		if ev, ok := c.startLocked(e); ok {
			changes = append(changes, ev)
		}
	}
	c.mu.Unlock()
	c.logChanges(changes)

	stopDispatch := make(chan struct{})
	dispatched := make(chan []Event, 1)
	go func() { dispatched <- c.dispatch(stopDispatch) }()

	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	for _, e := range c.targets {
		c.stopLocked(e)
	}
	c.mu.Unlock()
	c.wg.Wait()
	close(stopDispatch)
	// What the reader did not take yet goes into the channel while it has
	// room; the rest is dropped, since nobody is going to read it.
	left := <-dispatched
	c.mu.Lock()
	left = append(left, c.queue...)
	c.queue = nil
	c.mu.Unlock()
	for _, ev := range left {
		select {
		case c.events <- ev:
		default:
		}
	}
	close(c.events)
	return nil
}

// dispatch moves queued events to the Events channel until stop closes,
// and returns the events it could not deliver.
func (c *Checker) dispatch(stop <-chan struct{}) []Event {
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		for i, ev := range batch {
			select {
			case c.events <- ev:
			case <-stop:
				return batch[i:]
			}
		}
		select {
		case <-c.notify:
		case <-stop:
			return nil
		}
	}
}

// startLocked starts the target's goroutine, or, for a target without
// checks, declares it Up.
func (c *Checker) startLocked(e *entry) (Event, bool) {
	e.gen++
	if e.probe == nil {
		if e.m.state == Up {
			return Event{}, false
		}
		prev := e.m.state
		e.m.state = Up
		return c.changeLocked(e, prev, "no health check configured", 0, time.Now()), true
	}
	ctx, cancel := context.WithCancel(c.ctx)
	e.cancel = cancel
	rng := rand.New(rand.NewPCG(c.rng.Uint64(), c.rng.Uint64()))
	c.wg.Add(1)
	go c.runTarget(ctx, e, e.gen, e.target, e.probe, rng)
	return Event{}, false
}

func (c *Checker) stopLocked(e *entry) {
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
	e.gen++
}

// runTarget checks one target until ctx ends: the first check at a random
// point of the first interval, so that targets added together do not fire
// together, then one check per interval ± jitter, start to start (a check
// that overruns the interval is followed at once by the next).
func (c *Checker) runTarget(ctx context.Context, e *entry, gen uint64, t Target, check probe, rng *rand.Rand) {
	defer c.wg.Done()
	timer := time.NewTimer(firstDelay(rng, t.Spec.Interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, t.Spec.Timeout)
		err := check(cctx)
		cancel()
		latency := time.Since(start)
		if ctx.Err() != nil {
			return // stopped mid-check: the result means nothing
		}
		c.record(e, gen, err, start, latency)
		timer.Reset(max(0, nextDelay(rng, t.Spec.Interval, c.jitter)-latency))
	}
}

// record applies one check result to the target's state.
func (c *Checker) record(e *entry, gen uint64, err error, at time.Time, latency time.Duration) {
	var changes []Event
	c.mu.Lock()
	if e.gen != gen || c.targets[e.target.ID] != e {
		c.mu.Unlock()
		return
	}
	e.checks++
	e.lastCheck, e.lastErr, e.lastLatency = at, err, latency
	prev := e.m.state
	if e.m.observe(err == nil, e.target.Spec.Rise, e.target.Spec.Fall) {
		var reason string
		if err == nil {
			reason = fmt.Sprintf("%d consecutive checks passed", e.m.successes)
		} else {
			reason = fmt.Sprintf("%d consecutive checks failed, last: %v", e.m.failures, err)
		}
		changes = append(changes, c.changeLocked(e, prev, reason, latency, at.Add(latency)))
	}
	id := e.target.ID
	c.mu.Unlock()

	if c.observe != nil {
		c.observe(id, err == nil, latency)
	}
	c.logChanges(changes)
}

// changeLocked records that e entered its current state and queues the
// event.
func (c *Checker) changeLocked(e *entry, prev State, reason string, latency time.Duration, at time.Time) Event {
	t := e.target
	e.since = at
	ev := Event{
		TargetID: t.ID,
		VIP:      t.VIP,
		Proto:    t.Proto,
		Real:     t.Real,
		Mark:     t.Mark,
		State:    e.m.state,
		Previous: prev,
		Reason:   reason,
		Latency:  latency,
		At:       at,
	}
	c.queue = append(c.queue, ev)
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return ev
}

// logChanges logs one line per state change, outside the lock.
func (c *Checker) logChanges(events []Event) {
	for _, ev := range events {
		level := slog.LevelInfo
		if ev.State == Down {
			level = slog.LevelWarn
		}
		c.log.LogAttrs(context.Background(), level, "real "+ev.State.String(),
			slog.String("target", ev.TargetID),
			slog.String("vip", ev.VIP.String()),
			slog.String("proto", ev.Proto),
			slog.String("real", ev.Real.String()),
			slog.String("state", ev.State.String()),
			slog.String("previous", ev.Previous.String()),
			slog.String("reason", ev.Reason),
			slog.Duration("latency", ev.Latency),
		)
	}
}

// firstDelay spreads first checks uniformly over one interval.
func firstDelay(rng *rand.Rand, interval time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(interval)))
}

// nextDelay is the interval lengthened or shortened by up to jitter of it,
// uniformly, so targets that happen to fire together drift apart.
func nextDelay(rng *rand.Rand, interval time.Duration, jitter float64) time.Duration {
	span := int64(float64(interval) * jitter)
	if span <= 0 {
		return interval
	}
	return interval + time.Duration(rng.Int64N(2*span+1)-span)
}
