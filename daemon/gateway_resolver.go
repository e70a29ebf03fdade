package daemon

import (
	"context"

	"vipcast/neigh"
)

// startResolver follows the default gateway's MAC on ifname and programs
// every change into the data plane. Until a MAC is known, VIP traffic is
// dropped (the data plane has nowhere to send it) and no VIP is announced.
func (g *gatewayState) startResolver(ctx context.Context, ifname string) error {
	r, err := neigh.New(neigh.Options{Interface: ifname, Logger: g.log})
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.info = GatewayInfo{Err: "resolving the default gateway's MAC"}
	g.mu.Unlock()
	go func() {
		if err := r.Run(ctx); err != nil {
			g.log.Error("gateway resolution stopped", "err", err)
		}
	}()
	go func() {
		for gw := range r.Updates() {
			g.mu.Lock()
			static := g.static != nil
			g.mu.Unlock()
			if static {
				continue // a reload switched to a configured MAC
			}
			info := GatewayInfo{MAC: gw.MAC, Source: gw.Source, NextHop: gw.IP}
			if gw.Err != nil {
				info.Err = gw.Err.Error()
			}
			if !gw.Known() {
				g.log.Warn("gateway MAC unknown; keeping the last one, if any", "reason", info.Err)
			}
			if err := g.set(info); err != nil {
				g.log.Error("program gateway MAC", "err", err)
			}
		}
	}()
	return nil
}
