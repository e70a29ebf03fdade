package daemon

import (
	"context"
)

// startResolver follows the default gateway's MAC on ifname.
func (g *gatewayState) startResolver(ctx context.Context, ifname string) error {
	g.mu.Lock()
	g.info = GatewayInfo{Err: "automatic gateway resolution is not built yet: set gateway_mac in the configuration"}
	g.mu.Unlock()
	g.log.Warn("no gateway MAC: VIP traffic is dropped until one is set", "interface", ifname)
	return nil
}
