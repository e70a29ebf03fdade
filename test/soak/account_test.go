package soak

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestSignature(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "refused"},
		{fmt.Errorf("read body from real1 after 3 bytes: %w", syscall.ECONNRESET), "reset"},
		{fmt.Errorf("wrapped: %w", errors.New("unexpected EOF")), "other"},
		{fmt.Errorf("x: %w", os.ErrDeadlineExceeded), "timeout"},
		{errors.New("stream from real2: 10 bytes, want 20"), "eof"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, "unreachable"},
		{errors.New("HTTP 500 from real1"), "other"},
	} {
		if got := Signature(c.err); got != c.want {
			t.Errorf("Signature(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestClassify(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	const grace = 2 * time.Second
	events := []Event{
		{Kind: FlapStop, Host: "real2", Start: at(10), End: at(11)},
		{Kind: FlapPause, Host: "real3", Start: at(30), End: at(31.5)},
		{Kind: AbruptRemoval, Host: "real1", VIP: "v4", Start: at(50), End: at(50.01)},
	}
	for _, c := range []struct {
		name string
		f    Failure
		want Class
	}{
		{"refused while real2 is down", Failure{Traffic: TrafficHTTP, VIP: "v4", Sig: "refused", Start: at(10.2), End: at(10.3)}, ClassFlap},
		{"refused within grace after it is back", Failure{Traffic: TrafficHTTP, VIP: "v6", Sig: "refused", Start: at(12.5), End: at(12.6)}, ClassFlap},
		{"refused long after", Failure{Traffic: TrafficHTTP, VIP: "v4", Sig: "refused", Start: at(20), End: at(20.1)}, ClassUnexpected},
		{"timeout during a flap", Failure{Traffic: TrafficHTTP, VIP: "v4", Sig: "timeout", Start: at(10), End: at(10.5)}, ClassUnexpected},
		{"unreachable during a flap", Failure{Traffic: TrafficHTTP, VIP: "v4", Sig: "unreachable", Start: at(10), End: at(10.5)}, ClassUnexpected},
		{"transfer from real2 cut by its flap", Failure{Traffic: TrafficStream, VIP: "v6", Real: "real2", Sig: "eof", Start: at(8), End: at(10.1)}, ClassFlap},
		{"transfer from real1 during real2's flap", Failure{Traffic: TrafficStream, VIP: "v6", Real: "real1", Sig: "reset", Start: at(8), End: at(10.1)}, ClassUnexpected},
		{"reset during a pause only", Failure{Traffic: TrafficHTTP, VIP: "v4", Sig: "reset", Start: at(30.5), End: at(30.6)}, ClassUnexpected},
		{"transfer from real1 when real1 left v4 abruptly", Failure{Traffic: TrafficStream, VIP: "v4", Real: "real1", Sig: "reset", Start: at(49), End: at(50.02)}, ClassRemoval},
		{"transfer from real1 on another VIP", Failure{Traffic: TrafficStream, VIP: "v6", Real: "real1", Sig: "reset", Start: at(49), End: at(50.02)}, ClassUnexpected},
		{"transfer that ended before the removal", Failure{Traffic: TrafficStream, VIP: "v4", Real: "real1", Sig: "reset", Start: at(45), End: at(49)}, ClassUnexpected},
		{"reset before any reply after a removal", Failure{Traffic: TrafficKeepalive, VIP: "v4", Sig: "reset", Start: at(49.9), End: at(50.5)}, ClassRemoval},
		{"datagram sent just before the flap", Failure{Traffic: TrafficUDP, VIP: "u4", Start: at(9), End: at(9)}, ClassFlap},
		{"datagram sent long after", Failure{Traffic: TrafficUDP, VIP: "u4", Start: at(15), End: at(15)}, ClassUnexpected},
	} {
		if got := Classify(c.f, events, grace); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestLedgerSummary(t *testing.T) {
	l := NewLedger()
	t0 := time.Unix(0, 0)
	events := []Event{{Kind: FlapStop, Host: "real1", Start: t0, End: t0.Add(time.Second)}}
	l.OK(TrafficHTTP, "v4", "real1", 10)
	l.OK(TrafficHTTP, "v4", "real2", 10)
	l.Fail(Failure{Traffic: TrafficHTTP, VIP: "v4", Sig: "refused", Start: t0, End: t0.Add(500 * time.Millisecond)})
	l.Fail(Failure{Traffic: TrafficHTTP, VIP: "v4", Sig: "timeout", Start: t0, End: t0.Add(500 * time.Millisecond)})
	l.Fail(Failure{Traffic: TrafficUDP, VIP: "u4", Start: t0.Add(time.Hour), End: t0.Add(time.Hour)})
	s := l.Summarize(events, time.Second)
	if s.Attempts[TrafficHTTP] != 4 || s.OK[TrafficHTTP] != 2 {
		t.Errorf("attempts %v ok %v", s.Attempts, s.OK)
	}
	if s.Failed("") != 3 || s.Expected(TrafficHTTP) != 1 || s.UnexpectedCount != 1 || s.UnexplainedUDP != 1 {
		t.Errorf("failed %d expected %d unexpected %d unexplained udp %d\n%s",
			s.Failed(""), s.Expected(TrafficHTTP), s.UnexpectedCount, s.UnexplainedUDP, s.FailureTable())
	}
	if Counts(s.ByReal) != "http real1=1 http real2=1" {
		t.Errorf("by real %v", s.ByReal)
	}
}
