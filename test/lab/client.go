package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DialOptions shape a connection from a lab namespace.
type DialOptions struct {
	Src     netip.Addr    // local address; zero lets the kernel choose
	SrcPort uint16        // local port; 0 lets the kernel choose
	Mark    uint32        // SO_MARK (policy routing on the client)
	Timeout time.Duration // connect timeout; default 2 s
}

// Dial connects from inside ns to dst ("tcp" or "udp"). The socket is made
// inside the namespace; the connection can then be used from anywhere.
func Dial(ns *NS, network string, dst netip.AddrPort, o DialOptions) (net.Conn, error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	d := net.Dialer{Timeout: o.Timeout}
	if o.Src.IsValid() || o.SrcPort != 0 {
		src := o.Src
		if !src.IsValid() {
			src = netip.IPv4Unspecified()
			if dst.Addr().Is6() {
				src = netip.IPv6Unspecified()
			}
		}
		lap := netip.AddrPortFrom(src, o.SrcPort)
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(lap)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(lap)
		}
	}
	if o.Mark != 0 || o.SrcPort != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if o.SrcPort != 0 {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				}
				if serr == nil && o.Mark != 0 {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(o.Mark))
				}
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = d.Dial(network, dst.String())
		return err
	})
	return conn, err
}

// Reply is one HTTP answer.
type Reply struct {
	Status int
	Real   string // the X-Real header: which real answered
	Body   []byte
	Local  netip.AddrPort // the client's end of the connection
}

// HTTPConn is an HTTP/1.1 client connection from a lab namespace, for
// several requests on one TCP connection.
type HTTPConn struct {
	net.Conn
	r *bufio.Reader
}

// DialHTTP opens a TCP connection for HTTP from ns.
func DialHTTP(ns *NS, dst netip.AddrPort, o DialOptions) (*HTTPConn, error) {
	c, err := Dial(ns, "tcp", dst, o)
	if err != nil {
		return nil, err
	}
	return &HTTPConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// Get sends one request and reads the whole answer. closeAfter asks the
// server to close the connection after answering.
func (c *HTTPConn) Get(path string, closeAfter bool, timeout time.Duration) (Reply, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	conn := ""
	if closeAfter {
		conn = "Connection: close\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: lab\r\n%s\r\n", path, conn); err != nil {
		return Reply{}, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	rep := Reply{Status: resp.StatusCode, Real: resp.Header.Get(RealHeader), Body: body}
	if a, perr := netip.ParseAddrPort(c.LocalAddr().String()); perr == nil {
		rep.Local = a
	}
	if err != nil {
		return rep, fmt.Errorf("read body from %s after %d bytes: %w", rep.Real, len(body), err)
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("HTTP %d from %s", resp.StatusCode, rep.Real)
	}
	return rep, nil
}

// Get makes one HTTP request on a new connection from ns to dst and
// closes it.
func Get(ns *NS, dst netip.AddrPort, path string, o DialOptions) (Reply, error) {
	c, err := DialHTTP(ns, dst, o)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	return c.Get(path, true, 5*time.Second)
}

// Stream is a long transfer in progress: GET /stream on one connection.
type Stream struct {
	Real  string
	Want  int // body bytes expected after the real's name line
	conn  *HTTPConn
	resp  *http.Response
	got   int
	Local netip.AddrPort
}

// StartStream requests `bytes` bytes spread over d and returns once the
// headers are in.
func StartStream(ns *NS, dst netip.AddrPort, bytes int, d time.Duration, o DialOptions) (*Stream, error) {
	c, err := DialHTTP(ns, dst, o)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(d + 10*time.Second))
	if _, err := fmt.Fprintf(c, "GET /stream?bytes=%d&ms=%d HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n", bytes, d.Milliseconds()); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &Stream{Real: resp.Header.Get(RealHeader), Want: bytes, conn: c, resp: resp}
	s.Local, _ = netip.ParseAddrPort(c.LocalAddr().String())
	return s, nil
}

// Finish reads the rest of the transfer and reports how many bytes came
// and any error (a reset shows here).
func (s *Stream) Finish() (int, error) {
	defer s.conn.Close()
	body, err := io.ReadAll(s.resp.Body)
	s.got = len(body) - len(s.Real) - 1
	if err == nil && s.got != s.Want {
		err = fmt.Errorf("stream from %s: %d bytes, want %d", s.Real, s.got, s.Want)
	}
	if err == nil && !strings.HasPrefix(string(body), s.Real+"\n") {
		err = fmt.Errorf("stream from %s: body does not start with the real's name", s.Real)
	}
	return s.got, err
}

// Reals counts answers per real.
type Reals map[string]int

func (r Reals) String() string {
	var parts []string
	for _, n := range []string{"real1", "real2", "real3"} {
		parts = append(parts, fmt.Sprintf("%s=%d", n, r[n]))
	}
	for n, c := range r {
		if n != "real1" && n != "real2" && n != "real3" {
			parts = append(parts, fmt.Sprintf("%s=%d", n, c))
		}
	}
	return strings.Join(parts, " ")
}

// Spread makes n short HTTP connections from ns to dst, `workers` at a
// time, each from its own source port (firstPort, firstPort+1, ...; 0 lets
// the kernel choose), and counts which real answered each. Failed
// connections are counted under "error" and their errors returned (at
// most 5).
func Spread(ctx context.Context, ns *NS, dst netip.AddrPort, n, workers int, firstPort uint16, o DialOptions) (Reals, []error) {
	type result struct {
		real string
		err  error
	}
	jobs := make(chan int)
	results := make(chan result, n)
	for w := 0; w < workers; w++ {
		go func() {
			for i := range jobs {
				oo := o
				if firstPort != 0 {
					oo.SrcPort = firstPort + uint16(i)
				}
				rep, err := Get(ns, dst, "/", oo)
				results <- result{rep.Real, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := 0; i < n; i++ {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	counts := Reals{}
	var errs []error
	for i := 0; i < n; i++ {
		select {
		case r := <-results:
			if r.err != nil {
				counts["error"]++
				if len(errs) < 5 {
					errs = append(errs, r.err)
				}
				continue
			}
			counts[r.real]++
		case <-ctx.Done():
			return counts, append(errs, ctx.Err())
		}
	}
	return counts, errs
}
