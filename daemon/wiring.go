package daemon

import (
	"context"
	"net"
	"net/netip"

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
		})
	}
	return out
}
