package health

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"vipcast/internal/testutil"
)

// TestChecksCarryTheMark proves that every network check puts its mark on
// its socket and that a direct check puts none. Two namespaces on a veth:
//
//	lb 192.0.2.2 ── eth0 ══ eth0 ── real 192.0.2.11, VIP 203.0.113.1 on lo
//
// In lb, only packets marked 1234 have a route to the VIP (policy rule
// fwmark 1234 → table 100), and that same table makes the real's own
// address unreachable. So a check to the VIP passes only with mark 1234,
// and a direct check to the real passes only without it.
func TestChecksCarryTheMark(t *testing.T) {
	testutil.RequirePrivileged(t)
	id := testutil.RunID()
	lb, real := testutil.NewNS(t, id, "lb"), testutil.NewNS(t, id, "real")
	testutil.Veth(t, lb, "eth0", real, "eth0")
	for _, args := range [][]string{
		{"ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"},
		{"ip", "rule", "add", "fwmark", "1234", "table", "100"},
		{"ip", "route", "add", "203.0.113.1/32", "via", "192.0.2.11", "dev", "eth0", "onlink", "table", "100"},
		{"ip", "route", "add", "unreachable", "192.0.2.11/32", "table", "100"},
		// Replies come from the VIP, to which unmarked traffic has no route.
		{"sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"},
	} {
		lb.MustExec(t, args[0], args[1:]...)
	}
	real.MustExec(t, "ip", "addr", "add", "192.0.2.11/24", "dev", "eth0")
	real.MustExec(t, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")

	// Servers inside real: their sockets belong to the namespace they were
	// opened in, whichever thread serves them later.
	var httpLn, tlsLn net.Listener
	// A UDP server answers from the address it is bound to, the VIP for
	// checks through the tunnel (a wildcard socket would answer from
	// 192.0.2.11, which the connected check socket rightly ignores).
	var udpVIP, udpReal net.PacketConn
	if err := real.Do(func() (err error) {
		if httpLn, err = net.Listen("tcp4", "0.0.0.0:80"); err != nil {
			return err
		}
		if tlsLn, err = net.Listen("tcp4", "0.0.0.0:443"); err != nil {
			return err
		}
		if udpVIP, err = net.ListenPacket("udp4", "203.0.113.1:53"); err != nil {
			return err
		}
		udpReal, err = net.ListenPacket("udp4", "192.0.2.11:53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, ln := range []net.Listener{httpLn, tlsLn} {
		srv := httptest.NewUnstartedServer(mux)
		srv.Listener.Close()
		srv.Listener = ln
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		if ln == tlsLn {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		t.Cleanup(srv.Close)
	}
	for _, udp := range []net.PacketConn{udpVIP, udpReal} {
		t.Cleanup(func() { udp.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := udp.ReadFrom(buf)
				if err != nil {
					return
				}
				udp.WriteTo(buf[:n], from)
			}
		}()
	}

	vip := netip.MustParseAddr("203.0.113.1")
	specs := map[string]CheckSpec{
		"tcp":   {Type: TypeTCP, Port: 80},
		"http":  {Type: TypeHTTP, Port: 80, Path: "/health", BodyContains: "ok"},
		"https": {Type: TypeHTTPS, Port: 443, Path: "/health", InsecureSkipVerify: true},
		"udp":   {Type: TypeUDP, Port: 53, Payload: []byte("hello")},
		"icmp":  {Type: TypeICMP},
	}
	tests := []struct {
		name    string
		mark    uint32
		direct  bool
		wantErr string
	}{
		{"mark of the real's route", 1234, false, ""},
		{"another mark", 999, false, "unreachable"},
		{"direct ignores the mark", 1234, true, ""},
	}
	for typ, spec := range specs {
		for _, tc := range tests {
			t.Run(typ+"/"+tc.name, func(t *testing.T) {
				spec := spec
				spec.Timeout = 10 * time.Second
				spec.Direct = tc.direct
				tg := Target{ID: "x", VIP: netip.AddrPortFrom(vip, 8), Proto: "tcp", Real: netip.MustParseAddr("192.0.2.11"), Mark: tc.mark, Spec: spec}
				nt, err := tg.normalize()
				if err != nil {
					t.Fatal(err)
				}
				p := newProbe(nt, probeEnv{})
				ctx, cancel := context.WithTimeout(context.Background(), spec.Timeout)
				defer cancel()
				var result error
				if err := lb.Do(func() error { result = p(ctx); return nil }); err != nil {
					t.Fatal(err)
				}
				checkErr(t, result, tc.wantErr)
			})
		}
	}
}
