// Package daemon wires vipcastd together: it loads the configuration,
// programs and attaches the data plane, runs the health checker, the BGP
// speaker and the gateway resolver, and serves the management API. It is
// the only package that knows all of them; they talk to each other through
// it.
//
// Start-up order: data plane loaded (adopting pinned state) → attached →
// desired state programmed → API up (READY) → checks → BGP announces what
// is healthy. Shutdown runs it backwards: BGP withdraws first, then the API
// and the checks stop. The data plane is left attached and pinned, so a
// restart or upgrade loses no established flow; `vipcastd --cleanup`
// detaches and removes it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"

	"vipcast/bgp"
	"vipcast/config"
	"vipcast/health"
	"vipcast/lb"
)

// Options are vipcastd's inputs beyond the configuration file.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	// Reload delivers SIGHUPs; each one re-reads the configuration.
	Reload <-chan struct{}
	// Ready, when set, is called once the data plane is attached and the
	// API serves (systemd's READY=1).
	Ready func()
	// LogLevel, when set, is the level the API may change at run time.
	LogLevel *slog.LevelVar
	// PinRoot holds the pinned state of every interface (DefaultPinRoot
	// when empty); tests point it elsewhere.
	PinRoot string
}

// DefaultPinRoot is where vipcastd pins its data planes, one directory per
// interface.
var DefaultPinRoot = filepath.Join(lb.BPFFS, "vipcast")

// PinDir is where vipcastd pins an interface's data plane.
func PinDir(root, ifname string) string {
	if root == "" {
		root = DefaultPinRoot
	}
	return filepath.Join(root, ifname)
}

// Daemon is one running vipcastd.
type Daemon struct {
	opts Options
	log  *slog.Logger

	mu  sync.Mutex
	cfg *config.Config

	balancer *lb.Balancer
	hc       *lb.Healthcheck
	checker  *health.Checker
	ctrl     *controller
	gateway  *gatewayState
	speaker  *bgp.Speaker
	ann      *announcer
	api      *apiListener
	closers  []func() error
	stop     context.CancelFunc // ends Run (after a drain)
}

// Run runs vipcastd until ctx ends, then shuts down in order.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	d := &Daemon{opts: opts, log: opts.Logger.With("component", "daemon"), cfg: cfg, stop: stop}
	defer d.close()
	if err := d.start(ctx); err != nil {
		return err
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	return d.loop(ctx)
}

func (d *Daemon) start(ctx context.Context) error {
	cfg := d.cfg
	if err := lb.EnsureBPFFS(); err != nil {
		return err
	}
	iface, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", cfg.Interface, err)
	}
	pins := PinDir(d.opts.PinRoot, cfg.Interface)

	d.balancer, err = lb.New(balancerConfig(cfg, pins))
	if err != nil {
		return err
	}
	d.closers = append(d.closers, d.balancer.Close)
	if d.balancer.Adopted() {
		d.log.Info("adopted the data plane of an earlier run", "pins", pins)
	}

	if cfg.HCForwarding {
		if err := d.startHealthcheckForwarding(iface, pins); err != nil {
			return err
		}
	}

	if err := d.attach(pins); err != nil {
		return err
	}

	d.gateway = newGatewayState(cfg.GatewayMAC, d.setGatewayMAC)
	if err := d.gateway.start(ctx, cfg.Interface, d.opts.Logger); err != nil {
		return err
	}

	col := d.newCollector()
	d.checker = health.New(health.Options{Logger: d.opts.Logger, Jitter: cfg.Health.Jitter, Observe: col.CheckLatency().Observe})
	d.ctrl = &controller{
		log:          d.opts.Logger.With("component", "daemon"),
		dp:           d.balancer,
		checker:      d.checker,
		defCheck:     checkSpec(cfg.Health),
		defMoveFlows: cfg.Health.MoveFlowsOnDown,
		defRoute:     cfg.BGP.Route,
		vips:         map[lb.VIPKey]*wantVIP{},
		health:       map[realKey]health.State{},
	}
	if d.hc != nil {
		alloc, err := health.NewMarkAllocator(cfg.HCMarks.First, cfg.HCMarks.Last)
		if err != nil {
			return fmt.Errorf("hc_mark_range: %w", err)
		}
		d.ctrl.marks = &markSync{alloc: alloc, table: d.hc}
	}
	if d.balancer.Adopted() {
		d.ctrl.seedHealth()
	}
	changes, err := d.ctrl.apply(desiredFromConfig(cfg))
	for _, c := range changes {
		d.log.Info("programmed", "change", c)
	}
	if err != nil {
		return fmt.Errorf("program the configured VIPs: %w", err)
	}

	d.api, err = listenAPI(cfg.API, d.apiServer(), d.opts.Logger)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, d.api.close)

	if cfg.BGP.Enabled() {
		if err := d.startBGP(ctx); err != nil {
			return err
		}
	}
	if cfg.Metrics.Enabled() {
		if err := d.serveMetrics(ctx, col); err != nil {
			return err
		}
	}
	return nil
}

func balancerConfig(cfg *config.Config, pins string) lb.Config {
	return lb.Config{
		MaxVIPs:           cfg.MaxVIPs,
		MaxReals:          cfg.MaxReals,
		ConnTableSize:     cfg.LRUSize,
		FallbackTableSize: cfg.FallbackLRUSize,
		ForwardingCPUs:    cfg.ForwardingCores,
		NUMANodes:         cfg.NUMANodes,
		TunnelMTU:         cfg.TunnelMTU,
		SourcePrefixV4:    cfg.TunnelSourceV4,
		SourcePrefixV6:    cfg.TunnelSourceV6,
		NoICMPTooBig:      !cfg.ICMPTooBig,
		GatewayMAC:        cfg.GatewayMAC,
		PinPath:           pins,
	}
}

// startHealthcheckForwarding loads and attaches the TC program that sends
// marked health checks through the tunnel, from the interface's addresses
// unless others are configured.
func (d *Daemon) startHealthcheckForwarding(iface *net.Interface, pins string) error {
	cfg := d.cfg
	src4, src6 := cfg.HCSourceV4, cfg.HCSourceV6
	if !src4.IsValid() || !src6.IsValid() {
		a4, a6, err := interfaceAddrs(iface)
		if err != nil {
			return err
		}
		if !src4.IsValid() {
			src4 = a4
		}
		if !src6.IsValid() {
			src6 = a6
		}
	}
	hc, err := lb.NewHealthcheck(lb.HealthcheckConfig{
		MaxMarks:   int(min(cfg.HCMarks.Len(), 1<<20)) + operatorMarks,
		SourceV4:   src4,
		SourceV6:   src6,
		LocalMAC:   iface.HardwareAddr,
		GatewayMAC: cfg.GatewayMAC,
	})
	if err != nil {
		return err
	}
	d.hc = hc
	d.closers = append(d.closers, hc.Close)
	l, err := lb.AttachTCEgress(hc.Program(), cfg.Interface, pins)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, l.Close)
	d.log.Info("healthcheck forwarding attached", "interface", cfg.Interface, "source_v4", src4, "source_v6", src6)
	return nil
}

// interfaceAddrs picks the interface's first global IPv4 and IPv6 addresses.
func interfaceAddrs(iface *net.Interface) (v4, v6 netip.Addr, err error) {
	addrs, err := iface.Addrs()
	if err != nil {
		return v4, v6, fmt.Errorf("addresses of %s: %w", iface.Name, err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr()
		switch {
		case ip.Is4() && !v4.IsValid():
			v4 = ip
		case ip.Is6() && !ip.IsLinkLocalUnicast() && !v6.IsValid():
			v6 = ip
		}
	}
	return v4, v6, nil
}

// attach puts the balancer on the interface, or into the root program's slot.
func (d *Daemon) attach(pins string) error {
	cfg := d.cfg
	if cfg.Mode == config.ModeShared {
		if err := lb.RegisterInRoot(d.balancer.Program(), cfg.RootMapPath, cfg.ProgPosition); err != nil {
			return err
		}
		d.log.Info("balancer registered in the root program", "root_map_path", cfg.RootMapPath, "prog_position", cfg.ProgPosition)
		return nil
	}
	att, err := lb.AttachXDP(d.balancer.Program(), cfg.Interface, lb.XDPMode(cfg.XDPMode), pins)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, att.Link.Close)
	d.log.Info("balancer attached", "interface", cfg.Interface, "xdp_mode", att.Mode, "replaced_previous_run", att.Updated)
	return nil
}

func (d *Daemon) setGatewayMAC(mac net.HardwareAddr) error {
	var errs []error
	errs = append(errs, d.balancer.SetGatewayMAC(mac))
	if d.hc != nil {
		errs = append(errs, d.hc.SetGatewayMAC(mac))
	}
	return errors.Join(errs...)
}

// loop runs the checker and serves events until ctx ends.
func (d *Daemon) loop(ctx context.Context) error {
	checkCtx, stopChecks := context.WithCancel(context.Background())
	checkDone := make(chan error, 1)
	go func() { checkDone <- d.checker.Run(checkCtx) }()
	defer func() {
		stopChecks()
		<-checkDone
	}()
	events := d.checker.Events()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("shutting down: the data plane stays attached and keeps forwarding")
			d.stopBGP()
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("health checker stopped")
			}
			d.ctrl.onHealth(pending(ev, events)...)
		case <-d.opts.Reload:
			if changes, err := d.reload(); err != nil {
				d.log.Error("reload rejected; running state kept", "err", err)
			} else {
				d.log.Info("reloaded", "changes", len(changes))
			}
		}
	}
}

// reload re-reads the file and applies the difference; a bad file changes
// nothing.
func (d *Daemon) reload() ([]string, error) {
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := restartOnlyChanges(d.cfg, cfg); err != nil {
		return nil, err
	}
	changes, err := d.ctrl.apply(desiredFromConfig(cfg))
	for _, c := range changes {
		d.log.Info("reload", "change", c)
	}
	if err != nil {
		return changes, err
	}
	if !macEqual(cfg.GatewayMAC, d.cfg.GatewayMAC) {
		d.gateway.setStatic(cfg.GatewayMAC)
	}
	if d.speaker != nil {
		if err := d.speaker.Reconfigure(context.Background(), bgpConfig(cfg, false)); err != nil {
			return changes, fmt.Errorf("bgp: %w", err)
		}
		d.ann.mu.Lock()
		d.ann.policy = bgp.Policy{Mode: string(cfg.BGP.AnnouncePolicy)}
		d.ann.depri, d.ann.delay = cfg.BGP.Deprioritize, cfg.BGP.ReannounceDelay
		d.ann.mu.Unlock()
		d.ann.trigger()
	}
	d.cfg = cfg
	return changes, nil
}

// restartOnlyChanges refuses a reload that changes settings only a
// restart can apply, naming them.
func restartOnlyChanges(old, next *config.Config) error {
	var fields []string
	check := func(name string, same bool) {
		if !same {
			fields = append(fields, name)
		}
	}
	check("interface", old.Interface == next.Interface)
	check("mode", old.Mode == next.Mode && old.RootMapPath == next.RootMapPath && old.ProgPosition == next.ProgPosition)
	check("max_vips", old.MaxVIPs == next.MaxVIPs)
	check("max_reals", old.MaxReals == next.MaxReals)
	check("lru_size", old.LRUSize == next.LRUSize)
	check("fallback_lru_size", old.FallbackLRUSize == next.FallbackLRUSize)
	check("tunnel_mtu", old.TunnelMTU == next.TunnelMTU)
	check("tunnel_source_v4", old.TunnelSourceV4 == next.TunnelSourceV4)
	check("tunnel_source_v6", old.TunnelSourceV6 == next.TunnelSourceV6)
	check("hc_forwarding", old.HCForwarding == next.HCForwarding)
	check("hc_mark_range", old.HCMarks == next.HCMarks)
	check("api", old.API == next.API)
	check("metrics", old.Metrics == next.Metrics)
	check("gateway_mac (between auto and a fixed MAC)", (old.GatewayMAC == nil) == (next.GatewayMAC == nil))
	check("bgp (asn, router_id, listen_port, api_listen, graceful_restart)", old.BGP.ASN == next.BGP.ASN &&
		old.BGP.RouterID == next.BGP.RouterID && old.BGP.ListenPort == next.BGP.ListenPort &&
		old.BGP.APIListen == next.BGP.APIListen && old.BGP.GracefulRestart == next.BGP.GracefulRestart)
	if len(fields) > 0 {
		return fmt.Errorf("these settings need a restart, not a reload: %v", fields)
	}
	return nil
}

func macEqual(a, b net.HardwareAddr) bool { return a.String() == b.String() }

func (d *Daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i](); err != nil {
			d.log.Warn("close", "err", err)
		}
	}
}

// Cleanup detaches and removes everything vipcastd left for an interface:
// the XDP and TC links, the pinned maps, and its root-program slot in
// shared mode. Idempotent.
func Cleanup(cfg *config.Config, pinRoot string) error {
	var errs []error
	if cfg.Mode == config.ModeShared {
		errs = append(errs, lb.UnregisterFromRoot(cfg.RootMapPath, cfg.ProgPosition))
	}
	errs = append(errs, lb.RemovePins(PinDir(pinRoot, cfg.Interface)))
	return errors.Join(errs...)
}

// pending returns first and whatever other events are already waiting
// (at most 1024), so that a burst is applied together.
func pending(first health.Event, events <-chan health.Event) []health.Event {
	batch := []health.Event{first}
	for len(batch) < 1024 {
		select {
		case ev, ok := <-events:
			if !ok {
				return batch
			}
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}
