package health

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vipcast/internal/testutil"
)

// loopTarget checks addr on loopback as if it were a VIP. As root the check
// carries a mark (setting SO_MARK needs CAP_NET_ADMIN), which loopback
// ignores; otherwise it is direct.
func loopTarget(addr netip.AddrPort, spec CheckSpec) Target {
	tg := Target{ID: "loop", VIP: addr, Proto: "tcp", Real: addr.Addr(), Mark: 4242, Spec: spec}
	if os.Geteuid() != 0 {
		tg.Mark, tg.Spec.Direct = 0, true
	}
	return tg
}

// runProbe runs the target's check once, as the checker would.
func runProbe(t *testing.T, tg Target, env probeEnv) (time.Duration, error) {
	t.Helper()
	nt, err := tg.normalize()
	if err != nil {
		t.Fatal(err)
	}
	p := newProbe(nt, env)
	ctx, cancel := context.WithTimeout(context.Background(), nt.Spec.Timeout)
	defer cancel()
	start := time.Now()
	err = p(ctx)
	return time.Since(start), err
}

// listen opens a listener on loopback, skipping the test when the family
// is not available.
func listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		if strings.Contains(addr, "::1") {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic(fmt.Sprintf("address %v", a))
}

// acceptAndClose serves a listener that accepts connections and closes them.
func acceptAndClose(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// closedPort returns a loopback port on which nothing listens.
func closedPort(t *testing.T, network, host string) netip.AddrPort {
	t.Helper()
	var a net.Addr
	if strings.HasPrefix(network, "udp") {
		c, err := net.ListenPacket(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Skipf("no %s loopback: %v", host, err)
		}
		a = c.LocalAddr()
		c.Close()
	} else {
		ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Skipf("no %s loopback: %v", host, err)
		}
		a = ln.Addr()
		ln.Close()
	}
	return addrPort(a)
}

// hangServer accepts connections and never answers; they stay open until
// the test ends.
func hangServer(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	ln := listen(t, "tcp", addr)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return addrPort(ln.Addr())
}

func TestMarkControlSetsSOMark(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, mark := range []uint32{1, 10000, 0xfffffffe} {
		lc := net.ListenConfig{Control: markControl(mark)}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := pc.(*net.UDPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		pc.Close()
		if uint32(got) != mark {
			t.Fatalf("SO_MARK on the socket = %d, want %d", got, mark)
		}
	}
	if markControl(0) != nil {
		t.Fatal("mark 0 installs a Control func; it should leave sockets alone")
	}
}

func TestTCPProbe(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			ln := listen(t, "tcp", net.JoinHostPort(host, "0"))
			acceptAndClose(ln)
			tests := []struct {
				name    string
				addr    netip.AddrPort
				wantErr string
			}{
				{"listening", addrPort(ln.Addr()), ""},
				{"closed port", closedPort(t, "tcp", host), "connection refused"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					_, err := runProbe(t, loopTarget(tc.addr, CheckSpec{Type: TypeTCP}), probeEnv{})
					checkErr(t, err, tc.wantErr)
				})
			}
		})
	}
}

func TestTCPProbeOtherPort(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	acceptAndClose(ln)
	port := addrPort(ln.Addr()).Port()
	// The "VIP" port is closed; Spec.Port points the check at the listener.
	vip := closedPort(t, "tcp", "127.0.0.1")
	_, err := runProbe(t, loopTarget(vip, CheckSpec{Port: port}), probeEnv{})
	checkErr(t, err, "")
	_, err = runProbe(t, loopTarget(vip, CheckSpec{}), probeEnv{})
	checkErr(t, err, "refused")
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("check failed: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("check passed, want a failure containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("check failed with %q, want it to contain %q", err, want)
	}
}

// healthMux answers the paths the HTTP tests use.
func healthMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "i am healthy") })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "sick", http.StatusServiceUnavailable) })
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "svc.example" {
			http.Error(w, "wrong host "+r.Host, http.StatusMisdirectedRequest)
		}
	})
	mux.HandleFunc("/head", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			http.Error(w, "want HEAD", http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/sni", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.ServerName != "svc.example" {
			http.Error(w, "wrong SNI", http.StatusMisdirectedRequest)
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 2*maxBody)+"needle")
	})
	return mux
}

func startServer(t *testing.T, host string, tls bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(healthMux())
	srv.Listener.Close()
	srv.Listener = listen(t, "tcp", net.JoinHostPort(host, "0"))
	// Failed handshakes are what some cases test; keep them out of the output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPProbe(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			srv := startServer(t, host, false)
			addr := addrPort(srv.Listener.Addr())
			tests := []struct {
				name    string
				spec    CheckSpec
				addr    netip.AddrPort
				wantErr string
			}{
				{"200 passes", CheckSpec{Path: "/ok"}, addr, ""},
				{"default path is / (404 here)", CheckSpec{}, addr, "status 404, want 200-399"},
				{"redirect passes by default", CheckSpec{Path: "/redirect"}, addr, ""},
				{"redirect fails when 200 expected", CheckSpec{Path: "/redirect", ExpectStatus: []int{200}}, addr, "status 302, want 200"},
				{"503 fails", CheckSpec{Path: "/fail"}, addr, "status 503"},
				{"503 expected passes", CheckSpec{Path: "/fail", ExpectStatus: []int{200, 503}}, addr, ""},
				{"body contains", CheckSpec{Path: "/ok", BodyContains: "healthy"}, addr, ""},
				{"body lacks", CheckSpec{Path: "/ok", BodyContains: "dead"}, addr, `does not contain "dead"`},
				{"body beyond 64 KiB is not searched", CheckSpec{Path: "/big", BodyContains: "needle"}, addr, "does not contain"},
				{"host header", CheckSpec{Path: "/host", Host: "svc.example"}, addr, ""},
				{"default host header is the address", CheckSpec{Path: "/host"}, addr, "status 421"},
				{"method", CheckSpec{Path: "/head", Method: "HEAD"}, addr, ""},
				{"wrong method", CheckSpec{Path: "/head"}, addr, "status 405"},
				{"closed port", CheckSpec{Path: "/ok"}, closedPort(t, "tcp", host), "connection refused"},
				{"plain HTTP to TLS server", CheckSpec{Path: "/ok"}, addrPort(startServer(t, host, true).Listener.Addr()), "status 400"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.spec.Type = TypeHTTP
					tc.spec.Timeout = 5 * time.Second // not a timing test
					_, err := runProbe(t, loopTarget(tc.addr, tc.spec), probeEnv{})
					checkErr(t, err, tc.wantErr)
				})
			}
		})
	}
}

func TestHTTPSProbe(t *testing.T) {
	srv := startServer(t, "127.0.0.1", true)
	addr := addrPort(srv.Listener.Addr())
	// httptest's certificate names example.com, 127.0.0.1 and ::1.
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tests := []struct {
		name    string
		spec    CheckSpec
		roots   *x509.CertPool
		wantErr string
	}{
		{"verified by IP", CheckSpec{Path: "/ok"}, roots, ""},
		{"verified by SNI", CheckSpec{Path: "/ok", SNI: "example.com"}, roots, ""},
		{"SNI from host header", CheckSpec{Path: "/ok", Host: "example.com:8443"}, roots, ""},
		{"unknown authority", CheckSpec{Path: "/ok"}, nil, "certificate"},
		{"unknown authority, skip verify", CheckSpec{Path: "/ok", InsecureSkipVerify: true}, nil, ""},
		{"name mismatch", CheckSpec{Path: "/ok", SNI: "wrong.example"}, roots, "wrong.example"},
		{"server sees the SNI", CheckSpec{Path: "/sni", SNI: "svc.example", InsecureSkipVerify: true}, nil, ""},
		{"server sees no SNI", CheckSpec{Path: "/sni", InsecureSkipVerify: true}, roots, "status 421"},
		{"status over TLS", CheckSpec{Path: "/fail"}, roots, "status 503"},
		{"body over TLS", CheckSpec{Path: "/ok", BodyContains: "healthy"}, roots, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Type = TypeHTTPS
			// Handshakes are slow under -race on a loaded machine; this is
			// not a timing test.
			tc.spec.Timeout = 10 * time.Second
			_, err := runProbe(t, loopTarget(addr, tc.spec), probeEnv{rootCAs: tc.roots})
			checkErr(t, err, tc.wantErr)
		})
	}
	t.Run("TLS to plain server", func(t *testing.T) {
		plain := addrPort(startServer(t, "127.0.0.1", false).Listener.Addr())
		_, err := runProbe(t, loopTarget(plain, CheckSpec{Type: TypeHTTPS, Path: "/ok", InsecureSkipVerify: true, Timeout: 10 * time.Second}), probeEnv{})
		checkErr(t, err, "TLS handshake")
	})
}

func TestHTTPProbeTimeout(t *testing.T) {
	addr := hangServer(t, "127.0.0.1:0")
	for _, typ := range []CheckType{TypeHTTP, TypeHTTPS} {
		t.Run(string(typ), func(t *testing.T) {
			const timeout = 300 * time.Millisecond
			took, err := runProbe(t, loopTarget(addr, CheckSpec{Type: typ, Timeout: timeout, InsecureSkipVerify: true}), probeEnv{})
			checkErr(t, err, "timed out after 300ms")
			if took < timeout || took > timeout+time.Second {
				t.Fatalf("failed after %s, want about the %s timeout", took, timeout)
			}
		})
	}
}

// udpServer answers (or not) every datagram on a loopback port.
func udpServer(t *testing.T, host string, echo bool) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("no %s loopback: %v", host, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if echo {
				pc.WriteTo(buf[:n], from)
			}
		}
	}()
	return addrPort(pc.LocalAddr())
}

func TestUDPProbe(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			echo, silent, closed := udpServer(t, host, true), udpServer(t, host, false), closedPort(t, "udp", host)
			tests := []struct {
				name     string
				addr     netip.AddrPort
				expect   UDPExpect
				wantErr  string
				fullWait bool // the check must take the whole timeout
			}{
				{"reply: echo passes", echo, ExpectReply, "", false},
				{"reply: silence fails at timeout", silent, ExpectReply, "no reply within 500ms", true},
				{"reply: closed port fails at once", closed, ExpectReply, "port unreachable", false},
				{"silence: echo passes at once", echo, ExpectSilence, "", false},
				{"silence: silent listener passes at timeout", silent, ExpectSilence, "", true},
				{"silence: closed port fails at once", closed, ExpectSilence, "port unreachable", false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					spec := CheckSpec{Type: TypeUDP, Expect: tc.expect, Payload: []byte("ping"), Timeout: timeout}
					took, err := runProbe(t, loopTarget(tc.addr, spec), probeEnv{})
					checkErr(t, err, tc.wantErr)
					if tc.fullWait && took < timeout {
						t.Fatalf("decided after %s, before the %s timeout", took, timeout)
					}
					if !tc.fullWait && took > timeout/2 {
						t.Fatalf("took %s; the answer (or ICMP) was there at once", took)
					}
				})
			}
		})
	}
}

func TestICMPProbe(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			addr := netip.AddrPortFrom(netip.MustParseAddr(host), 0)
			took, err := runProbe(t, loopTarget(addr, CheckSpec{Type: TypeICMP, Timeout: 2 * time.Second}), probeEnv{})
			checkErr(t, err, "")
			t.Logf("echo to %s answered in %s", host, took)
		})
	}
	t.Run("no answer", func(t *testing.T) {
		// A namespace that ignores echo requests: the check must time out.
		ns := testutil.NewNS(t, testutil.RunID(), "icmp")
		ns.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1")
		const timeout = 300 * time.Millisecond
		var err error
		var took time.Duration
		if nserr := ns.Do(func() error {
			took, err = runProbe(t, loopTarget(netip.MustParseAddrPort("127.0.0.1:0"), CheckSpec{Type: TypeICMP, Timeout: timeout}), probeEnv{})
			return nil
		}); nserr != nil {
			t.Fatal(nserr)
		}
		checkErr(t, err, "no reply before the timeout")
		if took < timeout || took > timeout+time.Second {
			t.Fatalf("failed after %s, want about %s", took, timeout)
		}
	})
}

func TestMatchEcho(t *testing.T) {
	req := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 7, 'v', 'i', 'p'}
	ip4 := make([]byte, 20)
	ip4[0] = 0x45
	tests := []struct {
		name string
		msg  []byte
		v6   bool
		want echoMatch
	}{
		{"reply", []byte{0, 0, 0, 0, 0x12, 0x34, 0, 7, 'v', 'i', 'p'}, false, echoReply},
		{"other id", []byte{0, 0, 0, 0, 0x12, 0x35, 0, 7, 'v', 'i', 'p'}, false, echoOther},
		{"other seq", []byte{0, 0, 0, 0, 0x12, 0x34, 0, 8, 'v', 'i', 'p'}, false, echoOther},
		{"other payload", []byte{0, 0, 0, 0, 0x12, 0x34, 0, 7, 'v', 'i', 'x'}, false, echoOther},
		{"our own request", req, false, echoOther},
		{"short", []byte{0, 0, 0}, false, echoOther},
		{"unreachable quoting us", append(append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, ip4...), req[:8]...), false, echoUnreachable},
		{"unreachable quoting another", append(append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, ip4...), 8, 0, 0, 0, 0x99, 0x99, 0, 7), false, echoOther},
		{"truncated quote", append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, ip4[:10]...), false, echoOther},
		{"v6 reply", []byte{129, 0, 0, 0, 0x12, 0x34, 0, 7, 'v', 'i', 'p'}, true, echoReply},
		{"v6 unreachable quoting us", append(append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 40)...), 128, 0, 0, 0, 0x12, 0x34, 0, 7), true, echoUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := req
			if tc.v6 {
				r = append([]byte{128}, req[1:]...)
			}
			if got := matchEcho(tc.msg, r, tc.v6); got != tc.want {
				t.Fatalf("matchEcho = %d, want %d", got, tc.want)
			}
		})
	}
	// RFC 1071's example: the checksum of data that includes its own
	// checksum is zero.
	msg := []byte{8, 0, 0, 0, 0xab, 0xcd, 0, 1, 'x'}
	c := checksum(msg)
	msg[2], msg[3] = byte(c>>8), byte(c)
	if checksum(msg) != 0 {
		t.Fatalf("checksum over a checksummed message = %#x, want 0", checksum(msg))
	}
}

func TestExecProbe(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check.sh")
	// The script compares its environment with its arguments.
	if err := os.WriteFile(script, []byte(`#!/bin/sh
[ "$VIPCAST_VIP" = "$1" ] || { echo "VIPCAST_VIP=$VIPCAST_VIP, want $1" >&2; exit 1; }
[ "$VIPCAST_VIP_PORT" = "$2" ] || { echo "VIPCAST_VIP_PORT=$VIPCAST_VIP_PORT, want $2" >&2; exit 1; }
[ "$VIPCAST_PROTO" = "$3" ] || { echo "VIPCAST_PROTO=$VIPCAST_PROTO, want $3"; exit 1; }
[ "$VIPCAST_REAL" = "$4" ] || { echo "VIPCAST_REAL=$VIPCAST_REAL, want $4"; exit 1; }
[ "$VIPCAST_MARK" = "$5" ] || { echo "VIPCAST_MARK=$VIPCAST_MARK, want $5"; exit 1; }
[ -z "$HOME_FROM_TEST" ] || { echo "the checker leaked its own environment"; exit 1; }
exit 0
`), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME_FROM_TEST", "leak")
	vip := netip.MustParseAddrPort("203.0.113.1:80")
	real := netip.MustParseAddr("192.0.2.11")
	tests := []struct {
		name    string
		proto   string
		spec    CheckSpec
		wantErr string
		maxTime time.Duration
	}{
		{"environment", "tcp", CheckSpec{Command: []string{script, "203.0.113.1", "80", "tcp", "192.0.2.11", "10001"}}, "", 5 * time.Second},
		{"direct has no mark", "udp", CheckSpec{Direct: true, Command: []string{script, "203.0.113.1", "80", "udp", "192.0.2.11", "0"}}, "", 5 * time.Second},
		{"wrong VIP reported from stderr", "tcp", CheckSpec{Command: []string{script, "203.0.113.9", "80", "tcp", "192.0.2.11", "10001"}}, "exit status 1: VIPCAST_VIP=203.0.113.1, want 203.0.113.9", 5 * time.Second},
		{"wrong mark", "tcp", CheckSpec{Command: []string{script, "203.0.113.1", "80", "tcp", "192.0.2.11", "7"}}, "VIPCAST_MARK=10001, want 7", 5 * time.Second},
		{"missing command", "tcp", CheckSpec{Command: []string{filepath.Join(dir, "nope")}}, "no such file", 5 * time.Second},
		{"timeout kills the command", "tcp", CheckSpec{Timeout: 200 * time.Millisecond, Command: []string{"/bin/sh", "-c", "sleep 30"}}, "timed out after 200ms", 2 * time.Second},
		{"timeout kills its children", "tcp", CheckSpec{Timeout: 200 * time.Millisecond, Command: []string{"/bin/sh", "-c", "sleep 30 & sleep 30; wait"}}, "timed out", 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Type = TypeExec
			if tc.spec.Timeout == 0 {
				tc.spec.Timeout = 5 * time.Second // not a timing case
			}
			tg := Target{ID: "x", VIP: vip, Proto: tc.proto, Real: real, Mark: 10001, Spec: tc.spec}
			took, err := runProbe(t, tg, probeEnv{})
			checkErr(t, err, tc.wantErr)
			if took > tc.maxTime {
				t.Fatalf("took %s, want at most %s", took, tc.maxTime)
			}
		})
	}
	t.Run("timeout leaves no process behind", func(t *testing.T) {
		pidFile := filepath.Join(dir, "child.pid")
		tg := Target{ID: "x", VIP: vip, Proto: "tcp", Real: real, Mark: 1, Spec: CheckSpec{Type: TypeExec, Timeout: 300 * time.Millisecond,
			Command: []string{"/bin/sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"}}}
		_, err := runProbe(t, tg, probeEnv{})
		checkErr(t, err, "timed out")
		b, rerr := os.ReadFile(pidFile)
		if rerr != nil {
			t.Fatal(rerr)
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 1 {
			t.Fatalf("child pid %q: %v", b, err)
		}
		deadline := time.Now().Add(3 * time.Second)
		// Killed and reparented, the child may stay a zombie until init
		// reaps it; a zombie runs nothing.
		alive := func() bool {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return false
			}
			_, rest, _ := strings.Cut(string(stat), ") ")
			return !strings.HasPrefix(rest, "Z")
		}
		for alive() {
			if time.Now().After(deadline) {
				t.Fatalf("the script's child %d still runs after the check timed out", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("ExecEnv replaces the default environment", func(t *testing.T) {
		tg := Target{ID: "x", VIP: vip, Proto: "tcp", Real: real, Mark: 1,
			Spec: CheckSpec{Type: TypeExec, Command: []string{"/bin/sh", "-c", `[ "$EXTRA" = yes ] && [ "$PATH" = /nonexistent ]`}}}
		_, err := runProbe(t, tg, probeEnv{execEnv: []string{"EXTRA=yes", "PATH=/nonexistent"}})
		checkErr(t, err, "")
		_, err = runProbe(t, tg, probeEnv{})
		checkErr(t, err, "exit status 1")
	})
}

// An HTTP check whose server closes first ends with FIN, not RST: an RST
// answered to the real's late packets would leave the LB unmarked.
func TestHTTPProbeClosesGracefully(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	result := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			result <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err != nil {
			result <- err
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
		// Half-close, then see how the checker ends its side.
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(buf)
		result <- err
	}()
	tg := loopTarget(addrPort(ln.Addr()), CheckSpec{Type: TypeHTTP, Timeout: time.Second})
	if _, err := runProbe(t, tg, probeEnv{}); err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := <-result; !errors.Is(err, io.EOF) {
		t.Fatalf("server saw %v after the check, want EOF (a graceful close, not a reset)", err)
	}
}
