package health

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkThousandTargets runs 1,000 TCP targets at the default 1 s
// interval against a loopback listener and reports the CPU the whole
// process used per second of wall time, in percent of one core. The
// listener and both ends of every loopback handshake are counted too, so
// the checker's own share is smaller. Run with -benchtime 1x.
func BenchmarkThousandTargets(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acceptAndClose(ln)
	var checks, failed atomic.Int64
	c := New(Options{Observe: func(_ string, ok bool, _ time.Duration) {
		checks.Add(1)
		if !ok {
			failed.Add(1)
		}
	}})
	var targets []Target
	for i := range 1000 {
		tg := loopTarget(addrPort(ln.Addr()), CheckSpec{})
		tg.ID = fmt.Sprintf("t%04d", i)
		targets = append(targets, tg)
	}
	if err := c.Set(targets); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(1500 * time.Millisecond) // every target past its first check

	const window = 5 * time.Second
	b.ResetTimer()
	for range b.N {
		var before, after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		n0 := checks.Load()
		start := time.Now()
		time.Sleep(window)
		wall := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu")
		b.ReportMetric(float64(checks.Load()-n0)/wall.Seconds(), "checks/s")
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d checks failed against a listening port", n)
	}
}
