package soak

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The soak's accounting: what the clients saw, what the churn did, and
// which client errors the churn explains. It is plain logic (unit tests in
// account_test.go run in `make test`); the lab-driven parts are behind the
// build tag.

// EventKind is a churn action that may legitimately cost clients.
type EventKind string

const (
	// FlapStop: a real's servers were killed and started again. Every
	// connection it held dies (reset or cut short), and new connections
	// placed on it before its health checks fail are refused.
	FlapStop EventKind = "server stopped"
	// FlapPause: a real's servers were paused (SIGSTOP) and continued.
	// Health checks time out and the real leaves the ring, but its
	// established connections only stall (move_flows_on_down is off in
	// the lab), so a pause explains no error: it is logged for the report.
	FlapPause EventKind = "server paused"
	// AbruptRemoval: a real was deleted without draining first. Packets of
	// its established flows are placed again from the ring, on a real
	// that has no such connection and resets it: the expected cost of
	// removing a real that still carries flows.
	AbruptRemoval EventKind = "removed without draining"
)

// Event is one churn action, from the moment it started to take effect
// (Start) to the moment it was over (End): for a flap, servers stopped to
// servers answering again; for a removal, the API call.
type Event struct {
	Kind       EventKind
	Host       string // real1..real3
	VIP        string // for a removal, the VIP's key; "" for a flap (it hits every VIP)
	Start, End time.Time
}

// Traffic kinds.
const (
	TrafficHTTP      = "http"      // one request per connection
	TrafficKeepalive = "keepalive" // several requests on one connection
	TrafficStream    = "stream"    // a long transfer
	TrafficUDP       = "udp"       // one echo datagram
)

// Failure is one client attempt that did not complete: a connection or
// request that failed, a transfer cut short, a datagram without echo.
type Failure struct {
	Traffic string
	VIP     string
	// Real is the host that had answered on this connection before it
	// failed (a transfer's headers, a keep-alive's first reply), "" if
	// none had.
	Real       string
	Start, End time.Time // for a datagram, both are when it was sent
	Sig        string    // Signature of the error
	Err        string
}

// Class is why a failure happened, as far as the soak can tell.
type Class string

const (
	ClassFlap       Class = "real's server stopped (flap)"
	ClassRemoval    Class = "real removed without draining"
	ClassUnexpected Class = "unexpected"
)

// Signature sorts an error into the few kinds a client can see.
func Signature(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "bytes, want"):
		return "eof" // a transfer cut short (lab.Stream.Finish) without an error of its own
	}
	return "other"
}

// Classify decides whether the churn explains a failure, and how. grace
// is how long after an event its effects may still show up: health checks
// noticing a dead real (fall × interval), a reset in flight, a busy host.
//
// The rules:
//   - A timeout, an unreachable VIP or any other kind of error is never
//     explained: every VIP keeps reals on at least two hosts throughout,
//     so nothing the churn does may leave a client waiting or the VIP
//     without a route.
//   - A failure on a connection that a known host had answered is
//     explained by that host's server being stopped, or by one of its
//     addresses being removed from that VIP without draining, while the
//     connection lived (or within grace before it failed).
//   - A failure before any host answered (connect refused, reset or cut
//     short before the first reply) is explained if it was seen while
//     some host's server was stopped, or within grace after; or within
//     grace after a real of that VIP was removed without draining.
//   - A datagram without echo is explained if it was sent from grace
//     before some host's server stopped until grace after it answered
//     again, or within grace of a removal from its VIP. (Losses the
//     host's own sockets and queues account for are counted apart; see
//     Ledger.Verdict.)
func Classify(f Failure, events []Event, grace time.Duration) Class {
	if f.Traffic != TrafficUDP {
		switch f.Sig {
		case "refused", "reset", "eof":
		default:
			return ClassUnexpected
		}
	}
	overlaps := func(a0, a1, b0, b1 time.Time) bool { return !a1.Before(b0) && !b1.Before(a0) }
	var flap, removal bool
	for _, ev := range events {
		switch ev.Kind {
		case FlapStop:
			switch {
			case f.Traffic == TrafficUDP:
				flap = flap || overlaps(f.Start, f.End, ev.Start.Add(-grace), ev.End.Add(grace))
			case f.Real != "":
				flap = flap || (ev.Host == f.Real && overlaps(f.Start, f.End, ev.Start, ev.End.Add(grace)))
			default:
				flap = flap || overlaps(f.End, f.End, ev.Start, ev.End.Add(grace))
			}
		case AbruptRemoval:
			if ev.VIP != f.VIP {
				continue
			}
			switch {
			case f.Traffic == TrafficUDP:
				removal = removal || overlaps(f.Start, f.End, ev.Start.Add(-grace), ev.End.Add(grace))
			case f.Real != "":
				removal = removal || (ev.Host == f.Real && overlaps(f.Start, f.End, ev.Start, ev.End.Add(grace)))
			default:
				removal = removal || overlaps(f.End, f.End, ev.Start, ev.End.Add(grace))
			}
		}
	}
	switch {
	case flap:
		return ClassFlap
	case removal:
		return ClassRemoval
	}
	return ClassUnexpected
}

// maxFailures bounds the failures kept for classification; more than that
// fails the soak on its own (the bound on expected errors is far lower).
const maxFailures = 100_000

// Ledger counts what the clients did. It is safe for concurrent use.
type Ledger struct {
	mu       sync.Mutex
	attempts map[string]int64 // by traffic kind
	ok       map[string]int64
	bytes    map[string]int64
	byVIP    map[string]int64 // successes by VIP
	byReal   map[string]int64 // successes by traffic kind and host
	failures []Failure
	dropped  int64 // failures beyond maxFailures
	notes    map[string]int64
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{
		attempts: map[string]int64{}, ok: map[string]int64{}, bytes: map[string]int64{},
		byVIP: map[string]int64{}, byReal: map[string]int64{}, notes: map[string]int64{},
	}
}

// OK records a completed attempt.
func (l *Ledger) OK(traffic, vip, real string, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts[traffic]++
	l.ok[traffic]++
	l.bytes[traffic] += int64(bytes)
	l.byVIP[vip]++
	l.byReal[traffic+" "+real]++
}

// Fail records a failed attempt.
func (l *Ledger) Fail(f Failure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts[f.Traffic]++
	if len(l.failures) >= maxFailures {
		l.dropped++
		return
	}
	l.failures = append(l.failures, f)
}

// Note counts something worth reporting that is neither a success nor a
// failure (a UDP socket error whose datagram is counted lost anyway).
func (l *Ledger) Note(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notes[what]++
}

// Summary is the ledger classified against the churn's events.
type Summary struct {
	Attempts, OK, Bytes map[string]int64
	ByVIP, ByReal       map[string]int64
	Notes               map[string]int64
	// Failures by traffic kind, class and signature.
	ByClass map[string]map[Class]map[string]int64
	// Unexpected failures (the first few, for the log), and all their count.
	Unexpected      []Failure
	UnexpectedCount int64
	// UnexplainedUDP are datagrams lost outside every event's window.
	UnexplainedUDP int64
	Dropped        int64
}

// Summarize classifies every failure.
func (l *Ledger) Summarize(events []Event, grace time.Duration) Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Summary{
		Attempts: maps.Clone(l.attempts), OK: maps.Clone(l.ok), Bytes: maps.Clone(l.bytes),
		ByVIP: maps.Clone(l.byVIP), ByReal: maps.Clone(l.byReal), Notes: maps.Clone(l.notes),
		ByClass: map[string]map[Class]map[string]int64{}, Dropped: l.dropped,
	}
	for _, f := range l.failures {
		c := Classify(f, events, grace)
		sig := f.Sig
		if f.Traffic == TrafficUDP {
			sig = "no echo"
		}
		if s.ByClass[f.Traffic] == nil {
			s.ByClass[f.Traffic] = map[Class]map[string]int64{}
		}
		if s.ByClass[f.Traffic][c] == nil {
			s.ByClass[f.Traffic][c] = map[string]int64{}
		}
		s.ByClass[f.Traffic][c][sig]++
		if c != ClassUnexpected {
			continue
		}
		if f.Traffic == TrafficUDP {
			s.UnexplainedUDP++
			continue
		}
		s.UnexpectedCount++
		if len(s.Unexpected) < 20 {
			s.Unexpected = append(s.Unexpected, f)
		}
	}
	return s
}

// Failed counts the failures of one traffic kind, or of every kind for "".
func (s Summary) Failed(traffic string) int64 {
	return s.count(traffic, func(Class) bool { return true })
}

// Expected counts the failures of one traffic kind (every kind for "")
// that the churn explains.
func (s Summary) Expected(traffic string) int64 {
	return s.count(traffic, func(c Class) bool { return c != ClassUnexpected })
}

// count sums the failures of one traffic kind (every kind for "") whose
// class passes keep.
func (s Summary) count(traffic string, keep func(Class) bool) int64 {
	var n int64
	for t, byClass := range s.ByClass {
		if traffic != "" && t != traffic {
			continue
		}
		for c, bySig := range byClass {
			if keep(c) {
				n += Total(bySig)
			}
		}
	}
	return n
}

// Total sums a map's values.
func Total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// FailureTable renders failures by traffic, class and signature as
// Markdown rows: | traffic | class | kind | count |.
func (s Summary) FailureTable() string {
	var rows []string
	for _, t := range sortedKeys(s.ByClass) {
		for _, c := range sortedKeys(s.ByClass[t]) {
			for _, sig := range sortedKeys(s.ByClass[t][c]) {
				rows = append(rows, fmt.Sprintf("| %s | %s | %s | %d |", t, c, sig, s.ByClass[t][c][sig]))
			}
		}
	}
	if len(rows) == 0 {
		return "| (none) | | | 0 |"
	}
	return strings.Join(rows, "\n")
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Counts renders a map as "a=1 b=2", sorted by key.
func Counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
