package e2e

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"vipcast/test/lab"
)

// udpStream sends numbered datagrams to an echo VIP at a steady rate and
// counts the echoes.
type udpStream struct {
	sent     atomic.Int64
	errs     []string // send and receive errors (an ICMP error shows here)
	mu       sync.Mutex
	received map[int64]bool
	sentAt   []time.Time // of datagram seq at index seq-1
	reals    map[string]int
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startUDPStream(t *testing.T, l *lab.Lab, every time.Duration) *udpStream {
	t.Helper()
	conn, err := lab.Dial(l.Client, "udp", ap(lab.VIP4UDP, lab.UDPPort), lab.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(4 << 20)
	}
	s := &udpStream{received: map[int64]bool{}, reals: map[string]int{}, stop: make(chan struct{})}
	s.wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) {
				s.mu.Lock()
				s.errs = append(s.errs, "receive: "+err.Error())
				s.mu.Unlock()
				continue
			}
			if err != nil {
				return
			}
			var seq int64
			var real string
			if _, err := fmt.Sscanf(string(buf[:n]), "seq %d %s", &seq, &real); err == nil {
				s.mu.Lock()
				s.received[seq] = true
				s.reals[real]++
				s.mu.Unlock()
			}
		}
	})
	s.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				// Echoes still in flight get a moment, then the reader ends.
				time.Sleep(300 * time.Millisecond)
				conn.Close()
				return
			case <-tick.C:
				seq := s.sent.Add(1)
				s.mu.Lock()
				s.sentAt = append(s.sentAt, time.Now())
				s.mu.Unlock()
				if _, err := fmt.Fprintf(conn, "seq %d", seq); err != nil {
					s.mu.Lock()
					s.errs = append(s.errs, fmt.Sprintf("send %d: %v", seq, err))
					s.mu.Unlock()
				}
			}
		}
	})
	return s
}

// finish stops the stream and returns sent, lost, who echoed and the
// socket errors seen.
func (s *udpStream) finish() (sent, lost int64, reals map[string]int, errs []string) {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	sent = s.sent.Load()
	return sent, sent - int64(len(s.received)), s.reals, s.errs
}

// lostAt returns when each datagram that was not echoed was sent, in
// order; call it after finish.
func (s *udpStream) lostAt() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for i, at := range s.sentAt {
		if !s.received[int64(i+1)] {
			out = append(out, at)
		}
	}
	return out
}

// Scenario 7: vipcastd restarts (SIGTERM, start again) while a long TCP
// transfer and a steady UDP stream run through the VIP. The new process
// adopts the pinned data plane and BGP graceful restart keeps the route at
// BIRD, so the transfer sees no reset and the UDP stream loses nothing
// (target 0; the count is reported).
func TestRestartDuringTransfer(t *testing.T) {
	l := setup(t)
	lb1 := l.LBs[0]

	// The route must never leave BIRD: watch it the whole time.
	var routeMissing atomic.Int64
	watchStop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-watchStop:
				return
			default:
			}
			if ok, err := l.Bird.HasRoute(prefixOf(lab.VIP4)); err == nil && !ok {
				routeMissing.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	defer func() {
		select {
		case <-watchStop:
		default:
			close(watchStop)
		}
		watch.Wait()
	}()

	const transfer = 12 * time.Second
	stream, err := lab.StartStream(l.Client, ap(lab.VIP4, lab.HTTPPort), 8<<20, transfer, lab.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	udpVIP := vipOf(lab.VIP4UDP, "udp")
	forwardedBefore := vipPackets(stats(t, lb1), udpVIP)
	bufErrsBefore, err := l.UDPBufferErrors()
	if err != nil {
		t.Fatal(err)
	}
	noRouteBefore, err := l.RouterUnreachable()
	if err != nil {
		t.Fatal(err)
	}
	snmpBefore, _ := lab.SNMP(l.Router)
	// Frames the fabric could not hand to the LB's veth (its receive ring
	// full on a busy 2-core host) never reach the XDP program: they are
	// the lab's loss, not vipcast's, and are accounted separately.
	ingressBefore, _ := lb1.IngressDrops()
	udp := startUDPStream(t, l, time.Millisecond)
	time.Sleep(500 * time.Millisecond)

	birdLogBefore := len(l.BirdLog())
	// Three restarts while the transfer runs, each waiting for BGP to be
	// back before the next, as an upgrade of a fleet would.
	const restarts = 3
	for i := range restarts {
		t0 := time.Now()
		if err := lb1.Stop(); err != nil {
			t.Fatal(err)
		}
		stopped := time.Since(t0)
		if err := lb1.Start(); err != nil {
			t.Fatal(err)
		}
		serving := time.Since(t0)
		if log := lb1.Process().Output(); !strings.Contains(log, "adopted the data plane") {
			t.Errorf("restart %d: vipcastd did not adopt the pinned data plane:\n%s", i+1, log)
		}
		if err := lb1.WaitRouted(bounded(t, 20*time.Second), lab.DefaultVIPs(), 15*time.Second); err != nil {
			t.Fatal(err)
		}
		settled := time.Since(t0)
		waitFor(t, 20*time.Second, 10*time.Millisecond, "LB1's BGP sessions back", func() (bool, string) {
			v4, v6 := l.Bird.ProtocolState("lb1v4"), l.Bird.ProtocolState("lb1v6")
			return v4 == "Established" && v6 == "Established", "BIRD: lb1v4 " + v4 + ", lb1v6 " + v6
		})
		t.Logf("restart %d: stopped after %s, API serving after %s, every real up and routed after %s, BGP back after %s",
			i+1, stopped.Round(time.Millisecond), serving.Round(time.Millisecond), settled.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}

	n, err := stream.Finish()
	if err != nil {
		t.Errorf("the transfer across the restart broke: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	sent, lost, reals, sockErrs := udp.finish()
	close(watchStop)
	watch.Wait()
	forwarded := int64(vipPackets(stats(t, lb1), udpVIP) - forwardedBefore)
	bufErrsAfter, _ := l.UDPBufferErrors()
	hostDrops := int64(bufErrsAfter - bufErrsBefore)
	noRouteAfter, _ := l.RouterUnreachable()
	noRoute := int64(noRouteAfter - noRouteBefore)
	ingressAfter, _ := lb1.IngressDrops()
	ingressDrops := int64(ingressAfter - ingressBefore)
	t.Logf("frames dropped on the way into the LB's veth during the restarts (all traffic): %d", ingressDrops)
	t.Logf("across the restart: transfer from %s %d bytes (err %v); UDP stream: %d datagrams sent at 1/ms, %d forwarded by the LB, %d not echoed (%d dropped by busy sockets on the hosts, %d packets the router could not forward (ICMP unreachable)), echoed by %v; socket errors %q; route absent from BIRD in %d polls",
		stream.Real, n, err, sent, forwarded, lost, hostDrops, noRoute, reals, sockErrs, routeMissing.Load())

	// BIRD's own account: across a graceful restart it keeps the routes
	// (stale) and takes the re-sent ones as unchanged ("ignored").
	var changes, session []string
	for _, line := range strings.Split(l.BirdLog()[birdLogBefore:], "\n") {
		if strings.Contains(line, "lb1v4.ipv4 >") && !strings.Contains(line, "ignored") {
			changes = append(changes, line)
		}
		if strings.Contains(line, "lb1v4") && !strings.Contains(line, "KEEPALIVE") {
			session = append(session, line)
		}
	}
	// BIRD must keep the routes through the restart (graceful restart):
	// a flush and relearn means a peer opened without the forwarding-state
	// bit (what GoBGP does to peers added at once; bgp adds a restarting
	// speaker's peers one by one for that reason).
	if len(changes) > 0 {
		t.Errorf("BIRD flushed and re-learned LB1's routes instead of keeping them across the restart:\n%s\nBIRD's log of the session:\n%s",
			strings.Join(changes, "\n"), strings.Join(session, "\n"))
	}
	if forwarded+ingressDrops < sent {
		t.Errorf("the LB forwarded %d of the %d datagrams sent across the restart (%d frames lost before its XDP program), want all", forwarded, sent, ingressDrops)
	}
	if lost > hostDrops+ingressDrops {
		t.Errorf("%d of %d UDP datagrams lost across the restart, %d of them not explained by host socket drops (%d) or drops before the LB's XDP program (%d); want 0",
			lost, sent, lost-hostDrops-ingressDrops, hostDrops, ingressDrops)
	}
	if len(reals) != 1 {
		t.Errorf("the UDP flow changed real across the restart: %v", reals)
	}
	if n := routeMissing.Load(); n > 0 {
		t.Errorf("the route to %s left BIRD during the restart (%d polls, 2 ms apart, without it)", lab.VIP4, n)
	}
	if t.Failed() {
		snmpAfter, _ := lab.SNMP(l.Router)
		var moved []string
		for k, v := range snmpAfter {
			if d := v - snmpBefore[k]; d != 0 && !strings.Contains(k, "Octets") {
				moved = append(moved, fmt.Sprintf("%s+%d", k, d))
			}
		}
		sort.Strings(moved)
		t.Logf("the router's counters that moved: %s", strings.Join(moved, " "))
		drops, _ := lb1.IngressDrops()
		t.Logf("counters: %v; frames dropped on the way into the LB's veth: %d", stats(t, lb1).GetGlobal(), drops)
		t.Logf("the running vipcastd:\n%s", lastLines(lb1.Process().Output(), 60))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
