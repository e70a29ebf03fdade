package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"vipcast/neigh"
)

// A MAC the data plane refuses once is programmed again until it sticks;
// meanwhile the old MAC stays in use and the refusal is reported.
func TestGatewayRetriesAFailedWrite(t *testing.T) {
	oldMAC, _ := net.ParseMAC("02:00:00:00:00:01")
	newMAC, _ := net.ParseMAC("02:00:5e:00:01:01")
	var mu sync.Mutex
	var programmed []string
	failures := 2
	g := newGatewayState(nil, func(mac net.HardwareAddr) error {
		mu.Lock()
		defer mu.Unlock()
		if mac.String() == newMAC.String() && failures > 0 {
			failures--
			return errors.New("map update refused")
		}
		programmed = append(programmed, mac.String())
		return nil
	})
	g.log = slog.New(slog.DiscardHandler)
	if err := g.set(GatewayInfo{MAC: oldMAC, Source: "table"}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan neigh.Gateway)
	done := make(chan struct{})
	go func() { defer close(done); g.follow(ctx, updates, 20*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	updates <- neigh.Gateway{MAC: newMAC, Source: neigh.SourceARP}
	// The first attempt failed: old MAC still in use, the error shown.
	deadline := time.Now().Add(5 * time.Second)
	for {
		info := g.get()
		if info.MAC.String() == newMAC.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new MAC never programmed; info %+v", info)
		}
		if info.MAC.String() != oldMAC.String() {
			t.Fatalf("while failing: MAC %s, want the old %s", info.MAC, oldMAC)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if failures != 0 || len(programmed) != 2 || programmed[1] != newMAC.String() {
		t.Fatalf("programmed %v with %d failures left; want old then new after two failures", programmed, failures)
	}
	if info := g.get(); info.Err != "" {
		t.Fatalf("error still reported after success: %q", info.Err)
	}
}

// While a write keeps failing, the reason is what `vipcast gateway` shows.
func TestGatewayReportsAFailedWrite(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:5e:00:01:01")
	g := newGatewayState(nil, func(net.HardwareAddr) error { return errors.New("map update refused") })
	g.log = slog.New(slog.DiscardHandler)
	err := g.set(GatewayInfo{MAC: mac, Source: "arp"})
	if err == nil || !strings.Contains(err.Error(), "02:00:5e:00:01:01") {
		t.Fatalf("set: %v", err)
	}
	info := g.get()
	if info.MAC != nil || !strings.Contains(info.Err, "not programmed") || !strings.Contains(info.Err, "map update refused") {
		t.Fatalf("info %+v", info)
	}
	if g.known() {
		t.Fatal("a MAC the data plane refused counts as known: VIPs would be announced")
	}
}
