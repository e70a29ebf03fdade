package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"vipcast/internal/version"
	"vipcast/lb"
	"vipcast/metrics"
)

// newCollector builds the Prometheus collector over the daemon's parts; it
// reads them at scrape time.
func (d *Daemon) newCollector() *metrics.Collector {
	src := metrics.Source{
		DataPlane:    d.balancer,
		RealHealth:   d.realHealth,
		GatewayKnown: func() bool { return d.gateway != nil && d.gateway.known() },
		BuildVersion: version.String(),
		Logger:       d.opts.Logger.With("component", "metrics"),
		Announced: func() []netip.Addr {
			if d.ann == nil {
				return nil
			}
			return d.ann.announcedAddrs()
		},
		Peers: func() []metrics.PeerState {
			if d.speaker == nil {
				return nil
			}
			var out []metrics.PeerState
			for _, p := range d.speaker.Peers() {
				out = append(out, metrics.PeerState{Peer: p.Address.String(), Up: p.State == "established"})
			}
			return out
		},
	}
	if d.hc != nil { // a nil *lb.Healthcheck must not become a non-nil interface
		src.Healthcheck = d.hc
	}
	return metrics.NewCollector(src)
}

// serveMetrics listens (failing start-up if it cannot) and serves until ctx ends.
func (d *Daemon) serveMetrics(ctx context.Context, col *metrics.Collector) error {
	listen := d.cfg.Metrics.Listen
	ln, err := net.Listen("tcp", listen.String())
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", listen, err)
	}
	go func() {
		if err := metrics.ServeOn(ctx, ln, metrics.Handler(metrics.NewRegistry(col))); err != nil {
			d.log.Error("metrics server stopped", "err", err)
		}
	}()
	d.log.Info("metrics listening", "address", listen.String(), "path", metrics.Path)
	return nil
}

// realHealth is every checked real's health, for the metrics.
func (d *Daemon) realHealth() []metrics.RealHealth {
	if d.ctrl == nil {
		return nil
	}
	c := d.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []metrics.RealHealth
	for _, k := range sortedKeys(c.vips) {
		for _, r := range c.vips[k].reals {
			if r.admin == adminDisabled {
				continue
			}
			out = append(out, metrics.RealHealth{VIP: k, Real: r.addr, Healthy: c.effective(k, r).State != lb.Down})
		}
	}
	return out
}
