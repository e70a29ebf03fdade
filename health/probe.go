package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// probe runs one check; nil means it passed. It must return soon after ctx
// ends (the checker gives it a context with the check's timeout).
type probe func(ctx context.Context) error

// probeEnv is what probes need from the checker's options.
type probeEnv struct {
	rootCAs *x509.CertPool
	execEnv []string
}

// defaultExecPath is the only variable of the exec checks' environment
// (besides VIPCAST_*) when Options.ExecEnv is nil: the checker passes
// nothing of its own process on unless told to.
const defaultExecPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxBody bounds how much of an HTTP body BodyContains searches.
const maxBody = 64 << 10

// newProbe returns the check of a normalized target. Type none has no probe.
func newProbe(t Target, env probeEnv) probe {
	switch t.Spec.Type {
	case TypeTCP:
		return tcpProbe(t)
	case TypeHTTP:
		return httpProbe(t, nil)
	case TypeHTTPS:
		return httpProbe(t, env.rootCAs)
	case TypeUDP:
		return udpProbe(t)
	case TypeICMP:
		return icmpProbe(t)
	case TypeExec:
		return execProbe(t, env.execEnv)
	}
	return nil
}

func tcpProbe(t Target) probe {
	dest, mark := t.dest()
	return func(ctx context.Context) error {
		conn, err := dial(ctx, "tcp", dest, mark)
		if err != nil {
			return err
		}
		reset(conn)
		return nil
	}
}

// httpProbe sends one request on its own connection, without net/http's
// Transport: no pooling, no proxy from the environment, no redirects, and
// every socket call stays in the calling goroutine (so tests can run it
// inside a network namespace).
func httpProbe(t Target, roots *x509.CertPool) probe {
	s := t.Spec
	dest, mark := t.dest()
	https := s.Type == TypeHTTPS
	scheme, defaultPort := "http", uint16(80)
	if https {
		scheme, defaultPort = "https", 443
	}
	host := s.Host
	if host == "" {
		host = dest.String()
		if dest.Port() == defaultPort {
			host = strings.TrimSuffix(dest.String(), ":"+strconv.Itoa(int(defaultPort)))
		}
	}
	url := scheme + "://" + dest.String() + s.Path
	var tlsConfig *tls.Config
	if https {
		name := s.SNI
		if name == "" && s.Host != "" {
			name = s.Host
			if h, _, err := net.SplitHostPort(s.Host); err == nil {
				name = h
			}
			name = strings.Trim(name, "[]")
		}
		if name == "" {
			// No SNI is sent for an IP; the certificate must name the IP.
			name = dest.Addr().String()
		}
		tlsConfig = &tls.Config{
			ServerName:         name,
			InsecureSkipVerify: s.InsecureSkipVerify,
			RootCAs:            roots,
		}
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, s.Method, url, nil)
		if err != nil {
			return fmt.Errorf("build request %s %s: %w", s.Method, url, err)
		}
		req.Host = host
		req.Close = true
		req.Header.Set("User-Agent", "vipcast-health/1")

		conn, err := dial(ctx, "tcp", dest, mark)
		if err != nil {
			return err
		}
		// A check that saw the server close first ends with an ordinary
		// close: resetting while the real's FIN is still in flight makes
		// the kernel answer it with an RST from no socket, which carries
		// no mark, leaves without the tunnel and comes back to the LB as
		// VIP traffic. The server holds the TIME_WAIT then, not the LB.
		raw, graceful := conn, false
		defer func() {
			if graceful {
				_ = raw.Close()
			} else {
				reset(raw)
			}
		}()
		stop := bindToContext(ctx, conn)
		defer stop()
		if https {
			tc := tls.Client(conn, tlsConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				return ctxErr(ctx, fmt.Errorf("TLS handshake with %s: %w", dest, err), s.Timeout)
			}
			conn = tc
		}
		if err := req.Write(conn); err != nil {
			return ctxErr(ctx, fmt.Errorf("send %s %s: %w", s.Method, s.Path, err), s.Timeout)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return ctxErr(ctx, fmt.Errorf("read response to %s %s from %s: %w", s.Method, s.Path, dest, err), s.Timeout)
		}
		defer resp.Body.Close()
		if !statusOK(resp.StatusCode, s.ExpectStatus) {
			return fmt.Errorf("%s %s: status %d, want %s", s.Method, s.Path, resp.StatusCode, expectedStatus(s.ExpectStatus))
		}
		if s.BodyContains != "" {
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
			if err != nil {
				return ctxErr(ctx, fmt.Errorf("read body of %s %s: %w", s.Method, s.Path, err), s.Timeout)
			}
			if !bytes.Contains(body, []byte(s.BodyContains)) {
				return fmt.Errorf("%s %s: body (%d bytes read) does not contain %q", s.Method, s.Path, len(body), s.BodyContains)
			}
		}
		// Read the rest and the server's close (it was asked to close),
		// within the check's deadline; only then close gracefully.
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err == nil {
			if _, err := br.Peek(1); errors.Is(err, io.EOF) {
				graceful = true
			}
		}
		return nil
	}
}

func statusOK(code int, expect []int) bool {
	if len(expect) == 0 {
		return code >= 200 && code <= 399
	}
	return slices.Contains(expect, code)
}

func expectedStatus(expect []int) string {
	if len(expect) == 0 {
		return "200-399"
	}
	codes := make([]string, len(expect))
	for i, c := range expect {
		codes[i] = strconv.Itoa(c)
	}
	return strings.Join(codes, " or ")
}

// udpProbe implements the two UDP semantics of the package documentation.
// The socket is connected, so the kernel delivers only datagrams from the
// checked address and reports an ICMP port unreachable as ECONNREFUSED.
func udpProbe(t Target) probe {
	dest, mark := t.dest()
	s := t.Spec
	return func(ctx context.Context) error {
		conn, err := dial(ctx, "udp", dest, mark)
		if err != nil {
			return err
		}
		defer conn.Close()
		stop := bindToContext(ctx, conn)
		defer stop()
		if _, err := conn.Write(s.Payload); err != nil {
			return fmt.Errorf("send to %s: %w", dest, err)
		}
		buf := make([]byte, 2048)
		_, err = conn.Read(buf)
		switch {
		case err == nil:
			return nil // an answer passes either semantics
		case errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("udp %s: port unreachable: %w", dest, err)
		case timedOut(ctx, err):
			if s.Expect == ExpectSilence {
				return nil
			}
			return fmt.Errorf("udp %s: no reply within %s", dest, s.Timeout)
		}
		return fmt.Errorf("udp %s: %w", dest, err)
	}
}

// execProbe runs the command in its own process group, so that at timeout
// the kill reaches whatever a script started too.
func execProbe(t Target, baseEnv []string) probe {
	s := t.Spec
	if baseEnv == nil {
		baseEnv = []string{defaultExecPath}
	}
	env := append(slices.Clip(baseEnv), t.env()...)
	return func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		// Bounds Wait when a child that outlived the command holds the
		// output pipe open.
		cmd.WaitDelay = 500 * time.Millisecond
		out := &headBuffer{max: 512}
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		if err == nil {
			return nil
		}
		if line := out.firstLine(); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
		return ctxErr(ctx, fmt.Errorf("exec %s: %w", s.Command[0], err), s.Timeout)
	}
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	buf []byte
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *headBuffer) firstLine() string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b.buf)), "\n")
	return strings.TrimSpace(line)
}
