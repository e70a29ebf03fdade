package daemon

import (
	"context"
	"time"

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
	go g.follow(ctx, r.Updates(), time.Second)
	return nil
}

// follow programs every resolver update. When programming fails (the data
// plane refused the write), the same update is tried again every retry
// until it succeeds, a newer update replaces it, or ctx ends: the resolver
// reports changes only, so nothing else would bring the MAC back.
func (g *gatewayState) follow(ctx context.Context, updates <-chan neigh.Gateway, retry time.Duration) {
	var pending *GatewayInfo
	timer := time.NewTimer(retry)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case gw, ok := <-updates:
			if !ok {
				return
			}
			g.mu.Lock()
			static := g.static != nil
			g.mu.Unlock()
			if static {
				pending = nil
				continue // a reload switched to a configured MAC
			}
			info := GatewayInfo{MAC: gw.MAC, Source: gw.Source, NextHop: gw.IP}
			if gw.Err != nil {
				info.Err = gw.Err.Error()
			}
			if !gw.Known() {
				g.log.Warn("gateway MAC unknown; keeping the last one, if any", "reason", info.Err)
			}
			pending = &info
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		if pending == nil {
			continue
		}
		if err := g.set(*pending); err != nil {
			g.log.Error("program gateway MAC; trying again", "err", err, "retry_in", retry)
			timer.Reset(retry)
			continue
		}
		pending = nil
	}
}
