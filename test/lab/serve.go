package lab

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServeOptions configure a real's servers.
type ServeOptions struct {
	Name     string       // answers carry it, so the client knows which real served
	HTTPPort int          // HTTP on every address
	UDPPort  int          // UDP echo on each VIP
	VIPs     []netip.Addr // UDP sockets bind to each, so replies leave from the VIP
}

// RealHeader is the HTTP header naming the real that answered.
const RealHeader = "X-Real"

// Serve runs a real's servers until ctx ends:
//
//	GET /health                → 200 "ok"
//	GET /stream?bytes=N&ms=D   → the real's name on a line, then N bytes
//	                             spread evenly over D ms (a long transfer)
//	GET /anything-else         → "<name> <client addr:port>"
//	UDP "<payload>"            → "<payload> <name>"
//
// Every answer carries the header X-Real: <name>.
func Serve(ctx context.Context, o ServeOptions) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(RealHeader, o.Name)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		total, _ := strconv.Atoi(r.URL.Query().Get("bytes"))
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		total, ms = max(total, 0), max(ms, 0)
		head := o.Name + "\n"
		w.Header().Set(RealHeader, o.Name)
		w.Header().Set("Content-Length", strconv.Itoa(len(head)+total))
		_, _ = w.Write([]byte(head))
		// Step i of steps brings the total sent to total*i/steps.
		const tick = 10 * time.Millisecond
		steps := max(ms/int(tick/time.Millisecond), 1)
		chunk := make([]byte, 16<<10)
		for i := range chunk {
			chunk[i] = 'a' + byte(i%26)
		}
		sent, next := 0, time.Now()
		for step := 1; step <= steps; step++ {
			for target := total * step / steps; sent < target; {
				n, err := w.Write(chunk[:min(target-sent, len(chunk))])
				if err != nil {
					return
				}
				sent += n
			}
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			if step < steps {
				next = next.Add(tick)
				time.Sleep(time.Until(next))
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(RealHeader, o.Name)
		fmt.Fprintf(w, "%s %s\n", o.Name, r.RemoteAddr)
	})
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", o.HTTPPort))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	errc := make(chan error, 1+len(o.VIPs))
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	})
	var udps []*net.UDPConn
	for _, v := range o.VIPs {
		c, err := listenUDP(netip.AddrPortFrom(v, uint16(o.UDPPort)))
		if err != nil {
			srv.Close()
			for _, u := range udps {
				u.Close()
			}
			return fmt.Errorf("udp %s: %w", v, err)
		}
		// A busy host must not turn a late reader into lost datagrams.
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		udps = append(udps, c)
		wg.Go(func() { echo(c, o.Name) })
	}
	log.Printf("%s: HTTP on :%d, UDP echo on %d VIPs port %d", o.Name, o.HTTPPort, len(o.VIPs), o.UDPPort)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	srv.Close()
	for _, u := range udps {
		u.Close()
	}
	wg.Wait()
	return err
}

// listenUDP binds to a VIP. An IPv6 address just added to lo stays
// tentative until the kernel's address work runs, and binding to it fails
// meanwhile; the wait is bounded.
func listenUDP(a netip.AddrPort) (*net.UDPConn, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
		if err == nil || !errors.Is(err, syscall.EADDRNOTAVAIL) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func echo(c *net.UDPConn, name string) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		reply := append([]byte(strings.TrimRight(string(buf[:n]), "\n")), " "+name...)
		_, _ = c.WriteToUDPAddrPort(reply, from)
	}
}
