//go:build soak

package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"vipcast/test/lab"
)

// The clients. Every generator paces itself (a ticker, so a slow host
// lowers the rate rather than queueing work), stops when ctx ends, and is
// bounded in count as well as in time. Timeouts are generous: a busy
// 2-core host must not turn into client errors.

const (
	connectTimeout = 5 * time.Second
	requestTimeout = 10 * time.Second
)

// target is a VIP as the clients reach it, and its key for the ledger.
type target struct {
	key  string // lab.VIPCfg.Key()
	addr netip.AddrPort
}

// traffic runs the client generators against the lab's VIPs.
type traffic struct {
	l      *lab.Lab
	ledger *Ledger
	seed   uint64
	wg     sync.WaitGroup
}

// maxIterations bounds every generator's loop besides its context.
const maxIterations = 10_000_000

// start launches every generator; they run until ctx ends.
func (tr *traffic) start(ctx context.Context, http4, http6, http4in6, httpOther, udp4, udp6 target) {
	// Short requests, one per connection: about 4 × 20 per second.
	for _, tg := range []target{http4, http6, http4in6, httpOther} {
		tr.wg.Go(func() { tr.shortHTTP(ctx, tg, 50*time.Millisecond) })
	}
	// Keep-alive connections: 20 requests each, 10 per second.
	for _, tg := range []target{http4, http6} {
		tr.wg.Go(func() { tr.keepalive(ctx, tg, 20, 100*time.Millisecond) })
	}
	// Long transfers: 512 KiB over 3 s, back to back.
	for _, tg := range []target{http4, http6, http4in6} {
		tr.wg.Go(func() { tr.streams(ctx, tg, 512<<10, 3*time.Second) })
	}
	// UDP echo: 50 datagrams per second, a new socket (a new flow)
	// every 2.5 to 7.5 s.
	for i, tg := range []target{udp4, udp6} {
		rng := rand.New(rand.NewPCG(tr.seed, uint64(i)))
		tr.wg.Go(func() { tr.udp(ctx, tg, 20*time.Millisecond, 5*time.Second, rng) })
	}
}

// wait waits for every generator to finish (they end with ctx; the bound
// covers the longest request timeout and a transfer in progress).
func (tr *traffic) wait(limit time.Duration) error {
	done := make(chan struct{})
	go func() { tr.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(limit):
		return fmt.Errorf("client generators still running %s after the end", limit)
	}
}

func (tr *traffic) shortHTTP(ctx context.Context, tg target, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; i < maxIterations; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		c, err := lab.DialHTTP(tr.l.Client, tg.addr, lab.DialOptions{Timeout: connectTimeout})
		if err != nil {
			tr.fail(TrafficHTTP, tg, "", start, err)
			continue
		}
		rep, err := c.Get("/", true, requestTimeout)
		c.Close()
		if err != nil {
			tr.fail(TrafficHTTP, tg, "", start, err)
			continue
		}
		tr.ledger.OK(TrafficHTTP, tg.key, rep.Real, len(rep.Body))
	}
}

func (tr *traffic) keepalive(ctx context.Context, tg target, requests int, every time.Duration) {
	for i := 0; i < maxIterations && ctx.Err() == nil; i++ {
		tr.oneKeepalive(ctx, tg, requests, every)
	}
}

// oneKeepalive is one connection: requests at a steady pace, the last one
// asking the server to close. Every reply must come from the same real.
func (tr *traffic) oneKeepalive(ctx context.Context, tg target, requests int, every time.Duration) {
	start := time.Now()
	c, err := lab.DialHTTP(tr.l.Client, tg.addr, lab.DialOptions{Timeout: connectTimeout})
	if err != nil {
		tr.fail(TrafficKeepalive, tg, "", start, err)
		// Do not spin on a failing connect.
		sleepCtx(ctx, every)
		return
	}
	defer c.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	real, total := "", 0
	for n := 1; n <= requests; n++ {
		last := n == requests
		if ctx.Err() != nil {
			last = true
		}
		rep, err := c.Get("/", last, requestTimeout)
		if err != nil {
			tr.fail(TrafficKeepalive, tg, real, start, err)
			return
		}
		if real != "" && rep.Real != real {
			// A TCP connection cannot move between reals: the new one
			// would reset it. Answered by two means the data plane
			// delivered one flow to two servers.
			tr.fail(TrafficKeepalive, tg, real, start, fmt.Errorf("keep-alive answered by %s, then by %s", real, rep.Real))
			return
		}
		real, total = rep.Real, total+len(rep.Body)
		if last {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	tr.ledger.OK(TrafficKeepalive, tg.key, real, total)
}

func (tr *traffic) streams(ctx context.Context, tg target, bytes int, d time.Duration) {
	for i := 0; i < maxIterations && ctx.Err() == nil; i++ {
		start := time.Now()
		s, err := lab.StartStream(tr.l.Client, tg.addr, bytes, d, lab.DialOptions{Timeout: connectTimeout})
		if err != nil {
			tr.fail(TrafficStream, tg, "", start, err)
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		n, err := s.Finish()
		if err != nil {
			tr.fail(TrafficStream, tg, s.Real, start, err)
			continue
		}
		tr.ledger.OK(TrafficStream, tg.key, s.Real, n)
	}
}

// udp sends numbered datagrams on one connected socket for `life`, then
// reads echoes a while longer and counts every datagram without echo as a
// failure at its send time; then it starts again on a new socket.
//
// Sending is continuous: a socket lingers for its late echoes in the
// background while the next one sends. (A generator that paused while
// lingering fell into step with the flapper's period in one run, and the
// stops never met a sending socket.) Socket lives vary from life/2 to
// 3·life/2 for the same reason.
func (tr *traffic) udp(ctx context.Context, tg target, every, life time.Duration, rng *rand.Rand) {
	var lingering sync.WaitGroup
	defer lingering.Wait()
	for i := 0; i < maxIterations && ctx.Err() == nil; i++ {
		d := life/2 + time.Duration(rng.Int64N(int64(life)))
		if finish := tr.udpSocket(ctx, tg, every, d); finish != nil {
			lingering.Go(finish)
		}
	}
}

// udpLinger is how long a socket keeps reading after its last datagram:
// longer than a paused server stays paused (flapPause), so its late
// echoes count.
const udpLinger = 5 * time.Second

// udpSocket sends on a new socket for `life` and returns what remains to
// do: wait for late echoes, close, and account (nil if it could not open
// the socket).
func (tr *traffic) udpSocket(ctx context.Context, tg target, every, life time.Duration) (finish func()) {
	start := time.Now()
	conn, err := lab.Dial(tr.l.Client, "udp", tg.addr, lab.DialOptions{})
	if err != nil {
		tr.fail(TrafficUDP, tg, "", start, err)
		sleepCtx(ctx, every)
		return nil
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(1 << 20)
	}
	var (
		mu       sync.Mutex
		sentAt   = map[int]time.Time{}
		answered = map[int]string{}
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 512)
		for range maxIterations {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
					return
				}
				// An ICMP error for an earlier datagram (port
				// unreachable while a server is stopped): that
				// datagram is counted lost; note the error.
				tr.ledger.Note("udp socket error: " + Signature(err))
				continue
			}
			var seq int
			var real string
			if _, err := fmt.Sscanf(string(buf[:n]), "seq %d %s", &seq, &real); err != nil {
				tr.ledger.Note("udp echo unparsable")
				continue
			}
			mu.Lock()
			if _, ok := answered[seq]; !ok {
				answered[seq] = real
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	end := start.Add(life)
	for seq := 1; seq <= int(life/every)+1 && time.Now().Before(end); seq++ {
		select {
		case <-ctx.Done():
			end = time.Now()
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		sentAt[seq] = time.Now()
		mu.Unlock()
		if _, err := fmt.Fprintf(conn, "seq %d", seq); err != nil {
			tr.ledger.Note("udp send error: " + Signature(err))
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(udpLinger))
	return func() {
		defer conn.Close()
		<-readDone
		mu.Lock()
		defer mu.Unlock()
		for seq, at := range sentAt {
			if real, ok := answered[seq]; ok {
				tr.ledger.OK(TrafficUDP, tg.key, real, 0)
				continue
			}
			tr.ledger.Fail(Failure{Traffic: TrafficUDP, VIP: tg.key, Start: at, End: at, Err: "no echo"})
		}
	}
}

func (tr *traffic) fail(traffic string, tg target, real string, start time.Time, err error) {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	tr.ledger.Fail(Failure{Traffic: traffic, VIP: tg.key, Real: real, Start: start, End: time.Now(),
		Sig: Signature(err), Err: strings.TrimSpace(msg)})
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
