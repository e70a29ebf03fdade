package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// markControl sets SO_MARK on a socket before it connects or binds, so the
// TC healthcheck program sends the packets to the real the mark names.
// Mark 0 leaves the socket alone.
func markControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	if mark == 0 {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set SO_MARK %d on %s socket to %s: %w", mark, network, address, serr)
		}
		return nil
	}
}

// dial connects a marked socket to dest.
func dial(ctx context.Context, network string, dest netip.AddrPort, mark uint32) (net.Conn, error) {
	d := net.Dialer{Control: markControl(mark)}
	return d.DialContext(ctx, network, dest.String())
}

// bindToContext makes the conn's blocking calls return when ctx ends: it
// sets the context's deadline and, on cancellation, a deadline in the past.
// The returned func releases the binding.
func bindToContext(ctx context.Context, conn interface{ SetDeadline(time.Time) error }) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// reset closes a TCP connection with RST instead of FIN. A checker on the
// LB connects to the same VIP:port for every real of a service, many times
// a second; without this, each check would leave a TIME_WAIT socket on
// that 4-tuple space and could exhaust the local ports.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// timedOut tells whether err ended a check because its timeout expired.
// The socket deadline and the context's timer expire at the same instant,
// so either may be seen first; a cancellation is not a timeout.
func timedOut(ctx context.Context, err error) bool {
	if ctx.Err() == context.Canceled {
		return false
	}
	return ctx.Err() == context.DeadlineExceeded || errors.Is(err, os.ErrDeadlineExceeded)
}

// ctxErr says so when an error was caused by the check's timeout:
// "timed out after 1s" says more than "i/o timeout".
func ctxErr(ctx context.Context, err error, timeout time.Duration) error {
	if timedOut(ctx, err) {
		return fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return err
}
