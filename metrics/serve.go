package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry of its own (never the global default
// one) holding c and the Go runtime and process collectors.
func NewRegistry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// maxScrapesInFlight bounds concurrent scrapes: each one reads every VIP
// and real counter from the kernel.
const maxScrapesInFlight = 4

// Handler serves the metrics of reg (see NewRegistry). A collector that
// fails does not fail the scrape: whatever could be gathered is served.
func Handler(reg prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapesInFlight,
		Timeout:             10 * time.Second,
	})
}

// Path is where Serve serves the metrics.
const Path = "/metrics"

// Serve serves handler at /metrics on listen until ctx is done, then shuts
// the server down (letting a running scrape finish for a few seconds) and
// returns nil. It returns an error at once if it cannot listen.
func Serve(ctx context.Context, listen netip.AddrPort, handler http.Handler) error {
	ln, err := net.Listen("tcp", listen.String())
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", listen, err)
	}
	return ServeOn(ctx, ln, handler)
}

// ServeOn is Serve on a listener the caller opened (so that it can report
// a failure to listen before it goes on), closing it when ctx ends.
func ServeOn(ctx context.Context, ln net.Listener, handler http.Handler) error {
	mux := http.NewServeMux()
	mux.Handle(Path, handler)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><head><title>vipcastd</title></head><body><a href=%q>metrics</a></body></html>\n", Path)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close() // a scrape that outlived the grace period
	}
	if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("metrics: shut down server on %s: %w", ln.Addr(), err)
	}
	return nil
}
