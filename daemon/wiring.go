package daemon

import (
	"context"
	"net"
	"net/netip"
	"time"

	"vipcast/api"
	"vipcast/lb"
)

// apiServer builds the management API over the daemon's parts.
func (d *Daemon) apiServer() *apiServer {
	s := &apiServer{
		dp: d.ctrl,
		hooks: hooks{
			gateway:  d.gateway.get,
			healthOf: d.ctrl.healthOf,
			reload: func(context.Context) ([]string, error) {
				return d.reload()
			},
			health:    d.healthList,
			logLevel:  d.opts.LogLevel,
			drain:     d.drain,
			neighbors: d.neighbors,
			routes:    d.routes,
			announced: func(a netip.Addr) bool { return d.ann != nil && d.ann.isAnnounced(a) },
		},
		onGatewaySet: func(mac net.HardwareAddr) {
			d.gateway.operatorSet(mac)
			if d.hc != nil {
				_ = d.hc.SetGatewayMAC(mac)
			}
		},
	}
	if d.hc != nil {
		s.marks = d.hc
	}
	return s
}

// healthList is the checker's view for `vipcast health`.
func (d *Daemon) healthList() []*api.RealHealth {
	var out []*api.RealHealth
	for _, st := range d.checker.Status() {
		proto, err := lb.ParseProto(st.Proto)
		if err != nil {
			continue
		}
		out = append(out, &api.RealHealth{
			Vip:              vipKeyToAPI(lb.VIPKey{Addr: st.VIP.Addr(), Port: st.VIP.Port(), Proto: proto}),
			Real:             st.Real.String(),
			State:            st.State.String(),
			LastError:        st.LastError,
			LastLatencyNanos: int64(st.LastLatency),
			Mark:             st.Mark,
			SinceUnixNano:    unixNano(st.Since),
			LastOk:           st.LastOK,
		})
	}
	return out
}

// drain withdraws every VIP, then stops the daemon after drain_time.
func (d *Daemon) drain() ([]string, time.Duration) {
	var withdrawn []string
	if d.ann != nil {
		withdrawn = d.ann.drain()
	}
	d.mu.Lock()
	wait := d.cfg.BGP.DrainTime
	d.mu.Unlock()
	d.log.Info("draining: every VIP withdrawn; stopping when drain_time has passed", "withdrawn", len(withdrawn), "drain_time", wait)
	time.AfterFunc(wait, d.stop)
	return withdrawn, wait
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
