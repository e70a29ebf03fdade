package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
)

// gatewayState tracks the gateway MAC the data plane uses and where it
// came from: the configuration (static), the API (an operator's override,
// until the next reload or restart), or the resolver (auto).
type gatewayState struct {
	apply func(net.HardwareAddr) error

	mu   sync.Mutex
	info GatewayInfo
	// static is set when the configuration names a MAC.
	static net.HardwareAddr
	log    *slog.Logger
	// onChange is told after the MAC (or its absence) changed: the
	// announcer withdraws VIPs while no gateway is known.
	onChange func()
}

func newGatewayState(static net.HardwareAddr, apply func(net.HardwareAddr) error) *gatewayState {
	return &gatewayState{apply: apply, static: static}
}

// start programs a static MAC, or starts resolving the gateway.
func (g *gatewayState) start(ctx context.Context, ifname string, log *slog.Logger) error {
	g.log = log.With("component", "neigh")
	if g.static != nil {
		return g.set(GatewayInfo{MAC: g.static, Source: "static"})
	}
	return g.startResolver(ctx, ifname)
}

// set programs a MAC into the data plane and records it.
func (g *gatewayState) set(info GatewayInfo) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if info.MAC != nil && info.MAC.String() != g.info.MAC.String() {
		if err := g.apply(info.MAC); err != nil {
			// Still on the old MAC: say so where operators look.
			g.info.Err = fmt.Sprintf("gateway %s (%s) not programmed into the data plane: %v", info.MAC, info.Source, err)
			return fmt.Errorf("program gateway MAC %s: %w", info.MAC, err)
		}
		g.log.Info("gateway MAC in use", "mac", info.MAC.String(), "source", info.Source, "next_hop", info.NextHop)
	}
	if info.MAC == nil {
		// Keep forwarding to the last known MAC; report why it is stale.
		info.MAC = g.info.MAC
	}
	g.info = info
	if g.onChange != nil {
		go g.onChange()
	}
	return nil
}

// setStatic switches to a MAC from a reloaded configuration.
func (g *gatewayState) setStatic(mac net.HardwareAddr) {
	g.mu.Lock()
	g.static = mac
	g.mu.Unlock()
	if mac != nil {
		if err := g.set(GatewayInfo{MAC: mac, Source: "static"}); err != nil {
			g.log.Error("set gateway MAC", "err", err)
		}
	}
}

// operatorSet records a MAC set through the API.
func (g *gatewayState) operatorSet(mac net.HardwareAddr) {
	g.mu.Lock()
	g.info = GatewayInfo{MAC: mac, Source: "api"}
	g.mu.Unlock()
}

func (g *gatewayState) get() GatewayInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.info
}

// known reports whether any gateway MAC is programmed: without one no VIP
// may be announced.
func (g *gatewayState) known() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.info.MAC != nil
}
