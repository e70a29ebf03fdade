//go:build soak

package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"vipcast/api"
	"vipcast/test/lab"
)

// The operator: every 100 ms one real is added to or removed from a VIP
// (round robin over the VIPs), and now and then a weight changes, through
// vipcastd's API and, every tenth change, the vipcast CLI. Removal is
// usually graceful (drain, then delete once drained for drainHold), and
// sometimes abrupt (delete at once), which costs the flows the real still
// carries: those are logged as events so their client errors are
// explained, and only those.

const (
	churnEvery = 100 * time.Millisecond
	// drainHold is how long a draining real keeps its flows before it is
	// deleted: longer than the longest client connection (a 3 s transfer
	// or a 2 s keep-alive), plus margin for a busy host.
	drainHold = 6 * time.Second
	// settled is how long after being added (or set up again) a real
	// counts towards a VIP's minimum: two passing checks 500 ms apart
	// (soakCheck) put it in the ring, with margin.
	settled = 2500 * time.Millisecond
	// abruptShare is the share of removals done without draining.
	abruptShare = 0.07
	// minHosts: every VIP keeps settled, up reals on at least this many
	// hosts; the flapper takes one host down at a time, so one always
	// serves.
	minHosts = 2
)

// poolReal is a real address a VIP may use, and the host behind it.
type poolReal struct {
	addr netip.Addr
	host string
}

// modelReal is what the operator believes vipcastd holds for a real.
type modelReal struct {
	weight uint32
	state  string // "up" or "draining"
	since  time.Time
}

type churnVIP struct {
	cfg   lab.VIPCfg
	key   *api.VIPKey
	pool  []poolReal
	reals map[netip.Addr]*modelReal
}

// churner drives vipcastd's API like an operator. Only its own goroutine
// touches the model.
type churner struct {
	lb     *lab.LB
	vips   []*churnVIP
	rng    *rand.Rand
	events *eventLog

	ops    map[string]int64 // by operation
	viaCLI int64
	errs   []string // API or CLI errors: each fails the soak
}

func newChurner(x *lab.LB, vips []lab.VIPCfg, pools map[bool][]poolReal, seed uint64, events *eventLog) *churner {
	c := &churner{lb: x, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), events: events, ops: map[string]int64{}}
	start := time.Now().Add(-settled)
	for _, v := range vips {
		cv := &churnVIP{cfg: v, key: &api.VIPKey{Address: v.Addr.String(), Port: uint32(v.Port), Protocol: v.Proto},
			pool: pools[v.Reals[0].Addr.Is6()], reals: map[netip.Addr]*modelReal{}}
		for _, r := range v.Reals {
			cv.reals[r.Addr] = &modelReal{weight: 1, state: "up", since: start}
		}
		c.vips = append(c.vips, cv)
	}
	return c
}

// run changes something every churnEvery until ctx ends (bounded in count
// too), and checks vipcastd's view against the model every checkEvery.
func (c *churner) run(ctx context.Context, checkEvery time.Duration) {
	tick := time.NewTicker(churnEvery)
	defer tick.Stop()
	lastCheck := time.Now()
	limit := int(24 * time.Hour / churnEvery)
	for i := 0; i < limit; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		v := c.vips[i%len(c.vips)]
		c.addOrRemove(v, i%10 == 9)
		// A weight change on every third tick, on another VIP.
		if i%3 == 0 {
			c.reweight(c.vips[(i+1)%len(c.vips)], i%30 == 0)
		}
		if time.Since(lastCheck) >= checkEvery {
			c.check()
			lastCheck = time.Now()
		}
	}
}

// hostsUp counts the hosts with a settled, up real in v, leaving out addr.
func (c *churner) hostsUp(v *churnVIP, without netip.Addr) int {
	hosts := map[string]bool{}
	for _, p := range v.pool {
		r := v.reals[p.addr]
		if p.addr == without || r == nil || r.state != "up" || time.Since(r.since) < settled {
			continue
		}
		hosts[p.host] = true
	}
	return len(hosts)
}

func (c *churner) hostOf(v *churnVIP, addr netip.Addr) string {
	for _, p := range v.pool {
		if p.addr == addr {
			return p.host
		}
	}
	return "?"
}

// addOrRemove makes one change to v's reals: delete a real drained long
// enough; otherwise add one or remove one (drain, or rarely delete at
// once), keeping minHosts.
func (c *churner) addOrRemove(v *churnVIP, cli bool) {
	for _, addr := range sortedAddrs(v.reals) {
		if r := v.reals[addr]; r.state == "draining" && time.Since(r.since) >= drainHold {
			if c.del(v, addr, cli) {
				c.ops["delete drained real"]++
			}
			return
		}
	}
	var free, removable []netip.Addr
	for _, p := range v.pool {
		r := v.reals[p.addr]
		switch {
		case r == nil:
			free = append(free, p.addr)
		case r.state == "up" && c.hostsUp(v, p.addr) >= minHosts:
			removable = append(removable, p.addr)
		}
	}
	add := len(free) > 0 && (len(removable) == 0 || len(v.reals) <= len(v.pool)/2 || c.rng.IntN(2) == 0)
	switch {
	case add:
		addr := free[c.rng.IntN(len(free))]
		w := uint32(1 + c.rng.IntN(8))
		if c.add(v, addr, w, cli) {
			c.ops["add real"]++
			v.reals[addr] = &modelReal{weight: w, state: "up", since: time.Now()}
		}
	case len(removable) > 0:
		addr := removable[c.rng.IntN(len(removable))]
		if c.rng.Float64() < abruptShare {
			start := time.Now()
			if c.del(v, addr, cli) {
				c.ops["delete real without draining"]++
				c.events.add(Event{Kind: AbruptRemoval, Host: c.hostOf(v, addr), VIP: v.cfg.Key(), Start: start, End: time.Now()})
			}
			return
		}
		if c.set(v, addr, nil, "draining", cli) {
			c.ops["drain real"]++
			v.reals[addr].state, v.reals[addr].since = "draining", time.Now()
		}
	default:
		// Nothing to add and nothing may leave: the operator changes
		// their mind about a draining real instead.
		for _, addr := range sortedAddrs(v.reals) {
			if r := v.reals[addr]; r.state == "draining" {
				if c.set(v, addr, nil, "up", cli) {
					c.ops["undrain real"]++
					r.state, r.since = "up", time.Now()
				}
				return
			}
		}
		c.ops["idle tick"]++
	}
}

// reweight gives a random up real of v a new weight (1..10).
func (c *churner) reweight(v *churnVIP, cli bool) {
	var up []netip.Addr
	for _, addr := range sortedAddrs(v.reals) {
		if v.reals[addr].state == "up" {
			up = append(up, addr)
		}
	}
	if len(up) == 0 {
		return
	}
	addr := up[c.rng.IntN(len(up))]
	w := uint32(1 + c.rng.IntN(10))
	if c.set(v, addr, &w, "", cli) {
		c.ops["change weight"]++
		v.reals[addr].weight = w
	}
}

func (c *churner) add(v *churnVIP, addr netip.Addr, w uint32, cli bool) bool {
	if cli {
		return c.cli("real", "add", v.cfg.Key(), addr.String(), "--weight", strconv.Itoa(int(w)))
	}
	return c.call("AddReal", func(ctx context.Context) error {
		_, err := c.lb.API().AddReal(ctx, &api.AddRealRequest{Vip: v.key, Real: &api.Real{Address: addr.String(), Weight: w, State: "up"}})
		return err
	})
}

func (c *churner) del(v *churnVIP, addr netip.Addr, cli bool) bool {
	ok := false
	if cli {
		ok = c.cli("real", "del", v.cfg.Key(), addr.String())
	} else {
		ok = c.call("DeleteReal", func(ctx context.Context) error {
			_, err := c.lb.API().DeleteReal(ctx, &api.DeleteRealRequest{Vip: v.key, Address: addr.String()})
			return err
		})
	}
	if ok {
		delete(v.reals, addr)
	}
	return ok
}

func (c *churner) set(v *churnVIP, addr netip.Addr, w *uint32, state string, cli bool) bool {
	if cli {
		args := []string{"real", "set", v.cfg.Key(), addr.String()}
		if w != nil {
			args = append(args, "--weight", strconv.Itoa(int(*w)))
		}
		if state != "" {
			args = append(args, "--state", state)
		}
		return c.cli(args...)
	}
	req := &api.SetRealRequest{Vip: v.key, Address: addr.String(), Weight: w}
	if state != "" {
		req.State = &state
	}
	return c.call("SetReal", func(ctx context.Context) error {
		_, err := c.lb.API().SetReal(ctx, req)
		return err
	})
}

// call runs one API call, bounded; an error is recorded (it fails the
// soak: the operator only asks for what the model says is valid).
//
// A call is not cut short when the soak ends: the model must know whether
// it took effect.
func (c *churner) call(what string, fn func(context.Context) error) bool {
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := fn(cctx)
	if err != nil {
		c.errs = append(c.errs, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), what, err))
	}
	return err == nil
}

func (c *churner) cli(args ...string) bool {
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, errOut, code := c.lb.CLI(cctx, args...)
	if code != 0 {
		c.errs = append(c.errs, fmt.Sprintf("%s vipcast %v: exit %d: %s%s", time.Now().Format("15:04:05.000"), args, code, out, errOut))
		return false
	}
	c.viaCLI++
	return true
}

// check compares vipcastd's reals, weights and states with the model.
func (c *churner) check() {
	c.ops["state check"]++
	var resp *api.ListVIPsResponse
	if !c.call("ListVIPs", func(ctx context.Context) (err error) {
		resp, err = c.lb.API().ListVIPs(ctx, &api.ListVIPsRequest{})
		return err
	}) {
		return
	}
	if diff := diffModel(c.vips, resp); diff != "" {
		c.errs = append(c.errs, fmt.Sprintf("%s vipcastd's reals differ from the operator's: %s", time.Now().Format("15:04:05.000"), diff))
	}
}

// diffModel says how vipcastd's view differs from the model, "" if not.
func diffModel(vips []*churnVIP, resp *api.ListVIPsResponse) string {
	have := map[string]map[string]*api.Real{}
	for _, v := range resp.GetVips() {
		k := v.GetVip().GetKey()
		key := netip.AddrPortFrom(netip.MustParseAddr(k.GetAddress()), uint16(k.GetPort())).String() + "/" + k.GetProtocol()
		have[key] = map[string]*api.Real{}
		for _, r := range v.GetReals() {
			have[key][r.GetAddress()] = r
		}
	}
	var diffs []string
	for _, v := range vips {
		got, ok := have[v.cfg.Key()]
		if !ok {
			diffs = append(diffs, v.cfg.Key()+" missing")
			continue
		}
		for addr, m := range v.reals {
			r := got[addr.String()]
			if r == nil {
				diffs = append(diffs, fmt.Sprintf("%s: real %s missing", v.cfg.Key(), addr))
				continue
			}
			if r.GetWeight() != m.weight || r.GetState() != m.state {
				diffs = append(diffs, fmt.Sprintf("%s: real %s weight %d state %s, want %d %s", v.cfg.Key(), addr, r.GetWeight(), r.GetState(), m.weight, m.state))
			}
		}
		for addr := range got {
			if a, err := netip.ParseAddr(addr); err != nil || v.reals[a] == nil {
				diffs = append(diffs, fmt.Sprintf("%s: unexpected real %s", v.cfg.Key(), addr))
			}
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return strings.Join(diffs, "; ")
}

func sortedAddrs(m map[netip.Addr]*modelReal) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// eventLog collects churn events from the churner and the flapper.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (e *eventLog) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
}

func (e *eventLog) all() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// flapper makes one real's servers fail and recover every `every`, hosts
// in turn, alternating a stop (servers killed, started again after
// `down`) with a pause (SIGSTOP for `pause`, then SIGCONT). One host at a
// time, so every VIP keeps a serving host (see minHosts).
type flapper struct {
	l      *lab.Lab
	events *eventLog
	counts map[EventKind]int64
	errs   []string
}

// The interval varies by ±25% (seeded), so the flaps do not fall into step
// with any client's own period.
func (f *flapper) run(ctx context.Context, every, down, pause time.Duration, seed uint64) {
	f.counts = map[EventKind]int64{}
	rng := rand.New(rand.NewPCG(seed, 0xf1a9))
	limit := int(24*time.Hour/every) + 1
	for i := 0; i < limit; i++ {
		wait := every*3/4 + time.Duration(rng.Int64N(int64(every/2)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		r := f.l.Reals[i%len(f.l.Reals)]
		start := time.Now()
		if (i/len(f.l.Reals))%2 == 0 {
			r.StopServer()
			// Not cut short by ctx: the servers must come back.
			time.Sleep(down)
			if err := r.StartServer(); err != nil {
				f.errs = append(f.errs, fmt.Sprintf("restart %s's servers: %v", r.Name, err))
				return
			}
			f.events.add(Event{Kind: FlapStop, Host: r.Name, Start: start, End: time.Now()})
			f.counts[FlapStop]++
			continue
		}
		if err := r.PauseServer(); err != nil {
			f.errs = append(f.errs, fmt.Sprintf("pause %s's servers: %v", r.Name, err))
			return
		}
		time.Sleep(pause)
		if err := r.ResumeServer(); err != nil {
			f.errs = append(f.errs, fmt.Sprintf("resume %s's servers: %v", r.Name, err))
			return
		}
		f.events.add(Event{Kind: FlapPause, Host: r.Name, Start: start, End: time.Now()})
		f.counts[FlapPause]++
	}
}
