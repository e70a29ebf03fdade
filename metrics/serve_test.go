package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	_, src := fixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ServeOn(ctx, ln, Handler(NewRegistry(newTestCollector(src)))) }()

	base := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/metrics", http.StatusOK, `vipcast_build_info{goversion="go1.26.0",version="v1.2.3"} 1`},
		{"/", http.StatusOK, `href="/metrics"`},
		{"/debug/pprof/", http.StatusNotFound, ""},
	} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
			t.Errorf("GET %s: %s, want %d with %q", tc.path, resp.Status, tc.status, tc.body)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context was cancelled")
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Errorf("still serving after shutdown")
	}
}

func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := netip.MustParseAddrPort(ln.Addr().String())
	err = Serve(t.Context(), taken, http.NotFoundHandler())
	if err == nil || !strings.Contains(err.Error(), taken.String()) {
		t.Errorf("Serve on a taken port: %v, want an error naming %s", err, taken)
	}
}
