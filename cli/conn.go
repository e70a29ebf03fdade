package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"vipcast/api"
)

// conn is a client of vipcastd's API whose calls time out after --timeout
// and fail with errors worded for the operator (see friendly).
type conn struct {
	api.VipcastClient
	cc      *grpc.ClientConn
	socket  string
	mu      sync.Mutex
	dialErr error // the last failure to connect to the socket
}

// connect prepares a client for a.socket. gRPC dials lazily, so an absent
// daemon shows up as the first call's error.
func (a *app) connect() (*conn, error) {
	c := &conn{socket: a.socket}
	timeout := a.timeout
	cc, err := grpc.NewClient("passthrough:///vipcastd",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(c.dial),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
				return c.friendly(err, timeout.String())
			}
			return nil
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", a.socket, err)
	}
	c.cc = cc
	c.VipcastClient = api.NewVipcastClient(cc)
	return c, nil
}

// Close releases the connection.
func (c *conn) Close() {
	c.cc.Close()
}

// dial connects to the unix socket and remembers why it could not, which
// gRPC itself reduces to "Unavailable".
func (c *conn) dial(ctx context.Context, _ string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.socket)
	c.mu.Lock()
	c.dialErr = err
	c.mu.Unlock()
	return nc, err
}

// rpcError is an API failure worded for the operator; it wraps the gRPC
// status error for callers that want the code.
type rpcError struct {
	msg string
	err error
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.err }

// friendly maps a gRPC error to what the operator should read. Errors about
// the request keep the server's message as is, since it names the bad
// value ("vip 203.0.113.1:80/tcp: not found").
func (c *conn) friendly(err error, timeout string) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	wrap := func(format string, args ...any) error {
		return &rpcError{msg: fmt.Sprintf(format, args...), err: err}
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.ResourceExhausted,
		codes.FailedPrecondition, codes.OutOfRange, codes.Aborted:
		return wrap("%s", st.Message())
	case codes.Unavailable:
		c.mu.Lock()
		dialErr := c.dialErr
		c.mu.Unlock()
		if dialErr != nil {
			return wrap("%s", c.describeDialError(dialErr))
		}
		return wrap("vipcastd (socket %s) is unavailable: %s", c.socket, st.Message())
	case codes.DeadlineExceeded:
		return wrap("vipcastd (socket %s) did not answer within %s; is it overloaded? (raise --timeout to wait longer)", c.socket, timeout)
	case codes.Canceled:
		return wrap("interrupted")
	case codes.Unimplemented:
		return wrap("vipcastd does not support this command (is it older than vipcast? check \"vipcast version\"): %s", st.Message())
	case codes.PermissionDenied, codes.Unauthenticated:
		return wrap("permission denied by vipcastd: %s", st.Message())
	default:
		return wrap("vipcastd failed: %s (%s)", st.Message(), st.Code())
	}
}

// describeDialError says why the socket could not be reached and what to do.
func (c *conn) describeDialError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("is vipcastd running? (socket %s: no such file)", c.socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("is vipcastd running? (socket %s: connection refused)", c.socket)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("permission denied on socket %s: run as root or as a member of the socket's group", c.socket)
	default:
		return fmt.Sprintf("cannot connect to vipcastd at socket %s: %v", c.socket, err)
	}
}
