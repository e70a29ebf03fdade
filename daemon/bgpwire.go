package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"vipcast/api"
	"vipcast/bgp"
	"vipcast/config"
)

// bgpConfig translates the [bgp] table for the speaker.
func bgpConfig(c *config.Config, restarting bool) bgp.Config {
	b := c.BGP
	out := bgp.Config{
		ASN:              b.ASN,
		RouterID:         b.RouterID,
		ListenPort:       int32(b.ListenPort),
		AllowRemoteAPI:   b.AllowRemoteAPI,
		GracefulRestart:  b.GracefulRestart,
		RestartTime:      b.RestartTime,
		Restarting:       restarting && b.GracefulRestart,
		Communities:      communities(b.Route.Communities),
		LargeCommunities: routeAttrs(b.Route).LargeCommunities,
		MED:              b.Route.MED,
		LocalPref:        b.Route.LocalPref,
	}
	switch {
	case b.APIListen.IsZero():
		out.APIListen = bgp.APIOff
	case b.APIListen.Unix != "":
		out.APIListen = "unix://" + b.APIListen.Unix
	default:
		out.APIListen = b.APIListen.TCP.String()
	}
	for _, p := range b.Peers {
		bp := bgp.Peer{
			Address:     p.Address,
			ASN:         p.ASN,
			Description: p.Description,
			Password:    p.Password,
			MultihopTTL: uint8(min(p.MultihopTTL, 255)),
			HoldTime:    p.HoldTime,
			Keepalive:   p.Keepalive,
			Passive:     p.Passive,
			Port:        p.Port,
		}
		for _, f := range p.Families {
			bp.Families = append(bp.Families, string(f))
		}
		out.Peers = append(out.Peers, bp)
	}
	return out
}

// startBGP starts the speaker and the announcer.
func (d *Daemon) startBGP(ctx context.Context) error {
	cfg := d.cfg
	sp, err := bgp.New(bgpConfig(cfg, d.balancer.Adopted()), d.opts.Logger)
	if err != nil {
		return err
	}
	if err := sp.Start(ctx); err != nil {
		return fmt.Errorf("start BGP: %w", err)
	}
	d.speaker = sp
	d.ann = &announcer{
		log:      d.opts.Logger.With("component", "bgp"),
		speaker:  sp,
		policy:   bgp.Policy{Mode: string(cfg.BGP.AnnouncePolicy)},
		depri:    cfg.BGP.Deprioritize,
		grace:    time.Now().Add(cfg.BGP.StartupGrace),
		delay:    cfg.BGP.ReannounceDelay,
		services: d.ctrl.addressHealth,
		ready:    func() bool { return d.ctrl.firstRoundDone(d.checkProgress) },
		gateway:  d.gateway.known,
		kick:     make(chan struct{}, 1),
		holds:    map[netip.Addr]*bgp.HoldDown{},
		state:    map[netip.Addr]announceState{},
	}
	d.ctrl.changed = d.ann.trigger
	d.gateway.mu.Lock()
	d.gateway.onChange = d.ann.trigger
	d.gateway.mu.Unlock()
	go d.ann.run(ctx)
	go func() {
		for err := range sp.Errors() {
			d.log.Error("bgp speaker fault", "err", err, "component", "bgp")
		}
	}()
	return nil
}

func (d *Daemon) checkProgress() []checkProgress {
	var out []checkProgress
	for _, st := range d.checker.Status() {
		out = append(out, checkProgress{id: st.TargetID, up: st.State.String() == "up", checks: st.Checks})
	}
	return out
}

// stopBGP ends BGP at shutdown. With graceful restart the routes are left
// to the peers' restart timer, so a restart or upgrade does not move
// traffic; without it every VIP is withdrawn first. drain_on_shutdown
// withdraws and waits drain_time in both cases.
func (d *Daemon) stopBGP() {
	if d.speaker == nil {
		return
	}
	cfg := d.cfg.BGP
	if cfg.GracefulRestart && !cfg.DrainOnShutdown {
		d.log.Info("leaving routes to the peers' graceful-restart timer", "restart_time", cfg.RestartTime)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTime+10*time.Second)
	defer cancel()
	for _, r := range d.speaker.Announced() {
		_ = d.speaker.Withdraw(r.Prefix)
	}
	if cfg.DrainOnShutdown {
		d.log.Info("draining: VIPs withdrawn, waiting before exit", "drain_time", cfg.DrainTime)
		select {
		case <-time.After(cfg.DrainTime):
		case <-ctx.Done():
		}
	}
	if err := d.speaker.Stop(ctx); err != nil {
		d.log.Warn("stop BGP", "err", err)
	}
}

func (d *Daemon) neighbors() []*api.Neighbor {
	if d.speaker == nil {
		return nil
	}
	var out []*api.Neighbor
	for _, p := range d.speaker.Peers() {
		out = append(out, &api.Neighbor{
			Address: p.Address.String(), Asn: p.ASN, State: p.State,
			UptimeSeconds: int64(p.Uptime / time.Second), PrefixesSent: p.PrefixesSent, Description: p.Description,
		})
	}
	return out
}

func (d *Daemon) routes() []*api.Route {
	if d.speaker == nil {
		return nil
	}
	var out []*api.Route
	for _, r := range d.speaker.Announced() {
		out = append(out, &api.Route{Prefix: r.Prefix.String(), Communities: r.Attrs.Communities, Med: r.Attrs.MED, LocalPref: r.Attrs.LocalPref})
	}
	return out
}
