package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/config/oc"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// ErrStopped is returned by calls on a speaker that was stopped or is
// stopping.
var ErrStopped = errors.New("bgp: speaker stopped")

const (
	importPolicyName = "vipcast-import"
	// apiWait bounds how long Start waits for the gRPC API to accept.
	apiWait = 5 * time.Second
	// defaultStopTimeout bounds Stop when its context has no deadline.
	defaultStopTimeout = 10 * time.Second
)

type lifecycle int

const (
	stateNew lifecycle = iota
	stateRunning
	stateStopping
	stateStopped
)

// Route is one announced VIP with its effective attributes.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	Attrs  Attrs        `json:"attrs"`
	// NextHop is the configured next hop; invalid (shown as "self") means
	// each session's local address.
	NextHop netip.Addr `json:"next_hop"`
	Since   time.Time  `json:"since"`
}

// PeerStatus is one peer as `vipcast neighbor` shows it.
type PeerStatus struct {
	Address     netip.Addr    `json:"address"`
	ASN         uint32        `json:"asn"`
	Description string        `json:"description,omitempty"`
	State       string        `json:"state"` // idle, connect, active, opensent, openconfirm, established
	AdminDown   bool          `json:"admin_down,omitempty"`
	Uptime      time.Duration `json:"uptime"` // 0 unless established
	// Prefixes sent (advertised to the peer) and received (kept in GoBGP's
	// pre-policy Adj-RIB-In; the import policy lets none of them into the
	// RIB, so none is ever used or installed).
	PrefixesSent     uint64 `json:"prefixes_sent"`
	PrefixesReceived uint64 `json:"prefixes_received"`
}

// PeerEvent is a peer's session state change.
type PeerEvent struct {
	Time        time.Time  `json:"time"`
	Address     netip.Addr `json:"address"`
	ASN         uint32     `json:"asn"`
	Description string     `json:"description,omitempty"`
	State       string     `json:"state"`
	Previous    string     `json:"previous"`
}

// Speaker is vipcast's BGP speaker: an embedded GoBGP server that
// originates VIP host routes and accepts none.
type Speaker struct {
	log      *slog.Logger
	md5Probe func(netip.Addr) error // kernel TCP-MD5 check; replaced in tests
	errs     chan error

	mu     sync.Mutex // serialises operations; guards the fields below
	cfg    Config     // with defaults
	srv    *server.BgpServer
	state  lifecycle
	routes map[netip.Prefix]announced
	cancel context.CancelFunc // stops the peer watcher

	evMu     sync.Mutex // guards peer states, descriptions and subscribers
	peerSt   map[netip.Addr]string
	desc     map[netip.Addr]string
	subs     []*subscriber
	stopped  chan struct{} // closed once the speaker has stopped
	fatalMu  sync.Mutex
	fatalOut chan error // during Start: the first fatal error
}

type announced struct {
	attrs Attrs // as given to Announce (overrides)
	since time.Time
}

// New validates cfg and prepares a speaker; nothing listens or dials
// until Start.
func New(cfg Config, logger *slog.Logger) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Speaker{
		log:      logger.With("component", "bgp"),
		md5Probe: probeMD5,
		errs:     make(chan error, 8),
		cfg:      cfg.withDefaults(),
		routes:   make(map[netip.Prefix]announced),
		peerSt:   make(map[netip.Addr]string),
		stopped:  make(chan struct{}),
	}
	s.setPeers(s.cfg.Peers)
	return s, nil
}

// Errors delivers GoBGP's fatal conditions (see slogAdapter): the speaker
// keeps running, the daemon decides whether to exit. Buffered; events
// beyond the buffer are dropped (they are logged either way).
func (s *Speaker) Errors() <-chan error { return s.errs }

func (s *Speaker) onFatal(msg string, fields gobgplog.Fields) {
	err := fatalError(msg, fields)
	s.fatalMu.Lock()
	if s.fatalOut != nil {
		select {
		case s.fatalOut <- err:
		default:
		}
	}
	s.fatalMu.Unlock()
	select {
	case s.errs <- err:
	default:
	}
}

// Start runs the embedded GoBGP server, serves its API, installs the
// reject-all import policy, adds every peer and announces what was
// announced before Start. It returns once all that is configured; it
// never waits for a session to come up.
//
// Every socket GoBGP opens (API, listener, outgoing sessions) is created
// later on goroutines of its own, in the network namespace of whatever
// OS thread runs them: start the speaker in a process that lives in the
// right namespace, not from a thread that entered one.
func (s *Speaker) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return fmt.Errorf("bgp: Start called twice")
	}
	cfg := s.cfg
	for _, p := range cfg.Peers {
		if p.Password != "" {
			if err := s.md5Probe(p.Address); err != nil {
				return fmt.Errorf("bgp: peer %s: MD5 password needs kernel TCP-MD5 support (CONFIG_TCP_MD5SIG): %w", p.Address, err)
			}
		}
	}
	if err := removeStaleSocket(cfg.APIListen); err != nil {
		return err
	}
	if err := probeListen(cfg.APIListen); err != nil {
		return err
	}

	fatal := make(chan error, 1)
	s.fatalMu.Lock()
	s.fatalOut = fatal
	s.fatalMu.Unlock()
	defer func() {
		s.fatalMu.Lock()
		s.fatalOut = nil
		s.fatalMu.Unlock()
	}()

	opts := []server.ServerOption{server.LoggerOption(newSlogAdapter(s.log, s.onFatal))}
	if cfg.APIListen != APIOff {
		opts = append(opts, server.GrpcListenAddress(cfg.APIListen))
	}
	srv := server.NewBgpServer(opts...)
	// Serve is GoBGP's management loop; it has no way to return, so one
	// idle goroutine stays behind after Stop.
	go srv.Serve()
	defer func() {
		if err != nil {
			stopServer(srv, 2*time.Second)
		}
	}()

	if cfg.APIListen != APIOff {
		if err := waitAPI(ctx, cfg.APIListen, fatal); err != nil {
			return err
		}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        cfg.ASN,
		RouterId:   cfg.RouterID.String(),
		ListenPort: cfg.ListenPort,
		// Global families are indexes into oc's AfiSafiType table, not
		// route family codes.
		Families: []uint32{
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
		},
	}}); err != nil {
		return fmt.Errorf("bgp: start (asn %d, router id %s, listen port %d): %w", cfg.ASN, cfg.RouterID, cfg.ListenPort, err)
	}
	if err := installImportPolicy(ctx, srv); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	if err := srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.onWatch); err != nil {
		cancel()
		return fmt.Errorf("bgp: watch peers: %w", err)
	}
	s.cancel = cancel
	// A restarting speaker adds its peers one after the other. GoBGP (v3.37)
	// ends the restart for every configured peer as soon as the first one
	// has resynchronised; a peer still connecting then opens without the
	// forwarding-state bit, and its router flushes our routes (and relearns
	// them a moment later: lost packets). Added later, each peer opens as
	// restarting.
	now, later := cfg.Peers, []Peer(nil)
	if cfg.Restarting && len(cfg.Peers) > 1 {
		now, later = cfg.Peers[:1], cfg.Peers[1:]
	}
	for _, p := range now {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, cfg, cfg.Restarting)}); err != nil {
			cancel()
			return fmt.Errorf("bgp: add peer %s: %w", p.Address, err)
		}
	}
	if len(later) > 0 {
		go s.addRestartingPeers(wctx, now[0].Address, later)
	}
	for _, prefix := range sortedPrefixes(s.routes) {
		if err := s.addPath(ctx, srv, cfg, prefix, s.routes[prefix].attrs); err != nil {
			cancel()
			return err
		}
	}
	s.srv = srv
	s.state = stateRunning
	s.log.Info("bgp speaker started", "asn", cfg.ASN, "router_id", cfg.RouterID,
		"peers", len(cfg.Peers), "api", cfg.APIListen, "listen_port", cfg.ListenPort,
		"graceful_restart", cfg.GracefulRestart, "restarting", cfg.Restarting)
	return nil
}

// installImportPolicy makes the global RIB accept only our own paths.
// GoBGP applies the global import policy to locally originated paths too,
// hence the accept-local statement before the default reject. Paths from
// peers are still counted in each peer's Adj-RIB-In (GoBGP always keeps the
// pre-policy copy), but they never reach the RIB and are never installed.
func installImportPolicy(ctx context.Context, srv *server.BgpServer) error {
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: importPolicyName,
		Statements: []*api.Statement{{
			Name:       importPolicyName + "-accept-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}}); err != nil {
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicyName}},
		DefaultAction: api.RouteAction_REJECT,
	}}); err != nil {
		return fmt.Errorf("bgp: import policy assignment: %w", err)
	}
	return nil
}

func apiPeer(p Peer, cfg Config, restarting bool) *api.Peer {
	secs := func(d time.Duration) uint64 { return uint64(d / time.Second) }
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			Description:     p.Description,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          secs(p.HoldTime),
			KeepaliveInterval: secs(p.Keepalive),
			ConnectRetry:      secs(p.ConnectRetry),
		}},
		Transport: &api.Transport{
			PassiveMode: p.Passive,
			RemotePort:  uint32(p.Port),
		},
	}
	if p.MultihopTTL > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.MultihopTTL)}
	}
	for _, f := range p.Families {
		fam := familyV4
		if f == FamilyIPv6 {
			fam = familyV6
		}
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
		if cfg.GracefulRestart {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		ap.AfiSafis = append(ap.AfiSafis, af)
	}
	if cfg.GracefulRestart {
		rt := uint32(cfg.RestartTime / time.Second)
		ap.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     rt,
			DeferralTime:    rt,
			LocalRestarting: restarting,
		}
	}
	return ap
}

func (s *Speaker) addPath(ctx context.Context, srv *server.BgpServer, cfg Config, prefix netip.Prefix, a Attrs) error {
	path, err := buildPath(cfg.ASN, prefix, nextHopFor(cfg, prefix), effective(cfg, a), false)
	if err != nil {
		return fmt.Errorf("bgp: announce %s: %w", prefix, err)
	}
	if _, err := srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("bgp: announce %s: %w", prefix, err)
	}
	return nil
}

func (s *Speaker) deletePath(ctx context.Context, srv *server.BgpServer, cfg Config, prefix netip.Prefix, a Attrs) error {
	path, err := buildPath(cfg.ASN, prefix, nextHopFor(cfg, prefix), effective(cfg, a), true)
	if err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", prefix, err)
	}
	if err := srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: apiFamily(prefix), Path: path}); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", prefix, err)
	}
	return nil
}

// Announce originates prefix (a /32 or /128 VIP) with the Config's default
// attributes overridden by attrs. Announcing the same prefix again with
// the same attributes does nothing; with other attributes it replaces the
// route (an implicit withdraw at the peers). Before Start the route is
// remembered and sent once the speaker starts.
func (s *Speaker) Announce(prefix netip.Prefix, attrs Attrs) error {
	if err := checkVIPPrefix(prefix); err != nil {
		return err
	}
	if err := validateAttrs(attrs); err != nil {
		return fmt.Errorf("bgp: announce %s: %w", prefix, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state >= stateStopping {
		return ErrStopped
	}
	old, ok := s.routes[prefix]
	if ok && equalAttrs(effective(s.cfg, old.attrs), effective(s.cfg, attrs)) {
		s.routes[prefix] = announced{attrs: attrs, since: old.since}
		return nil
	}
	if s.state == stateRunning {
		if err := s.addPath(context.Background(), s.srv, s.cfg, prefix, attrs); err != nil {
			return err
		}
	}
	s.routes[prefix] = announced{attrs: attrs, since: time.Now()}
	e := effective(s.cfg, attrs)
	s.log.Info("vip announced", "prefix", prefix, "communities", e.Communities,
		"large_communities", e.LargeCommunities, "med", ptrValue(e.MED), "local_pref", ptrValue(e.LocalPref), "prepend", e.Prepend)
	return nil
}

// Withdraw stops announcing prefix; withdrawing what is not announced does
// nothing.
func (s *Speaker) Withdraw(prefix netip.Prefix) error {
	if err := checkVIPPrefix(prefix); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.routes[prefix]
	if !ok {
		return nil
	}
	if s.state == stateRunning {
		if err := s.deletePath(context.Background(), s.srv, s.cfg, prefix, old.attrs); err != nil {
			return err
		}
	}
	delete(s.routes, prefix)
	s.log.Info("vip withdrawn", "prefix", prefix)
	return nil
}

// Announced lists the announced VIPs with their effective attributes,
// sorted by prefix.
func (s *Speaker) Announced() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Route, 0, len(s.routes))
	for _, p := range sortedPrefixes(s.routes) {
		r := s.routes[p]
		out = append(out, Route{Prefix: p, Attrs: effective(s.cfg, r.attrs), NextHop: nextHopFor(s.cfg, p), Since: r.since})
	}
	return out
}

func sortedPrefixes(m map[netip.Prefix]announced) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

// Peers reports every configured peer, sorted by address. Before Start
// (or after Stop) it reports the configuration with state "idle".
func (s *Speaker) Peers() []PeerStatus {
	s.mu.Lock()
	srv, running, cfg := s.srv, s.state == stateRunning, s.cfg
	s.mu.Unlock()
	byAddr := make(map[netip.Addr]PeerStatus, len(cfg.Peers))
	for _, p := range cfg.Peers {
		byAddr[p.Address] = PeerStatus{Address: p.Address, ASN: p.ASN, Description: p.Description, State: "idle"}
	}
	if running {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			st := peerStatus(p)
			if c, ok := byAddr[st.Address]; ok && st.Description == "" {
				st.Description = c.Description
			}
			byAddr[st.Address] = st
		})
		if err != nil {
			s.log.Warn("list peers", "err", err)
		}
	}
	out := make([]PeerStatus, 0, len(byAddr))
	for _, st := range byAddr {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	return out
}

func peerStatus(p *api.Peer) PeerStatus {
	st := PeerStatus{State: "unknown"}
	if c := p.GetConf(); c != nil {
		st.Address, _ = netip.ParseAddr(c.NeighborAddress)
		st.ASN = c.PeerAsn
		st.Description = c.Description
	}
	if ps := p.GetState(); ps != nil {
		st.State = sessionState(ps.SessionState)
		st.AdminDown = ps.AdminState == api.PeerState_DOWN
		if !st.Address.IsValid() {
			st.Address, _ = netip.ParseAddr(ps.NeighborAddress)
		}
	}
	if up := p.GetTimers().GetState().GetUptime(); up != nil && st.State == "established" {
		st.Uptime = time.Since(up.AsTime()).Truncate(time.Second)
	}
	for _, af := range p.GetAfiSafis() {
		if s := af.GetState(); s != nil {
			st.PrefixesSent += s.Advertised
			st.PrefixesReceived += s.Received
		}
	}
	return st
}

func sessionState(v api.PeerState_SessionState) string {
	return strings.ToLower(v.String())
}

func ptrValue(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

// Watch returns a channel of peer state changes. Events are queued per
// subscriber without bound, so a slow reader never stalls the speaker;
// the channel is closed when ctx ends or the speaker has stopped (after the
// queued events).
func (s *Speaker) Watch(ctx context.Context) <-chan PeerEvent {
	sub := &subscriber{wake: make(chan struct{}, 1), out: make(chan PeerEvent)}
	s.evMu.Lock()
	s.subs = append(s.subs, sub)
	s.evMu.Unlock()
	go sub.pump(ctx, s.stopped)
	return sub.out
}

type subscriber struct {
	mu    sync.Mutex
	queue []PeerEvent
	wake  chan struct{}
	out   chan PeerEvent
}

func (sub *subscriber) push(ev PeerEvent) {
	sub.mu.Lock()
	sub.queue = append(sub.queue, ev)
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

func (sub *subscriber) pump(ctx context.Context, stopped <-chan struct{}) {
	defer close(sub.out)
	for {
		sub.mu.Lock()
		var ev PeerEvent
		have := len(sub.queue) > 0
		if have {
			ev = sub.queue[0]
			sub.queue = sub.queue[1:]
		}
		sub.mu.Unlock()
		if !have {
			select {
			case <-sub.wake:
				continue
			case <-stopped:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case sub.out <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// onWatch runs on GoBGP's watcher goroutine. It must not call into the
// server (that would wait on the management loop that feeds it).
func (s *Speaker) onWatch(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	p := pe.GetPeer()
	addr, err := netip.ParseAddr(p.GetState().GetNeighborAddress())
	if err != nil {
		return
	}
	state := sessionState(p.GetState().GetSessionState())
	s.evMu.Lock()
	prev, known := s.peerSt[addr]
	if !known {
		prev = "idle"
	}
	if prev == state {
		s.evMu.Unlock()
		return
	}
	s.peerSt[addr] = state
	ev := PeerEvent{
		Time: time.Now(), Address: addr, ASN: p.GetState().GetPeerAsn(),
		Description: s.peerDescription(addr), State: state, Previous: prev,
	}
	for _, sub := range s.subs {
		sub.push(ev)
	}
	s.evMu.Unlock()
	lvl := slog.LevelDebug
	if state == "established" || prev == "established" {
		lvl = slog.LevelInfo
	}
	s.log.Log(context.Background(), lvl, "peer state", "peer", addr, "asn", ev.ASN, "description", ev.Description, "state", state, "previous", prev)
}

func (s *Speaker) peerDescription(addr netip.Addr) string {
	return s.desc[addr] // under evMu
}

// setPeers records the configured peers for the watcher (under evMu, not
// mu, which an operation waiting on GoBGP may hold).
func (s *Speaker) setPeers(peers []Peer) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	s.desc = make(map[netip.Addr]string, len(peers))
	for _, p := range peers {
		s.desc[p.Address] = p.Description
	}
	for a := range s.peerSt {
		if _, ok := s.desc[a]; !ok {
			delete(s.peerSt, a)
		}
	}
}

// Reconfigure applies a new configuration without restarting the speaker:
// peers are added, removed, or updated, and routes are re-announced where
// the default attributes or next hops changed. Unchanged peers are not
// touched. A changed peer keeps its session only if timers or multihop
// TTL are all that changed; anything else (ASN, password, port, families,
// description, graceful restart) resets that session, as GoBGP needs a new
// OPEN for it. ASN, router id, listen port and API address need a restart
// and are refused with nothing changed. Config.Restarting is read by
// Start only.
func (s *Speaker) Reconfigure(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	next := cfg.withDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cfg
	var fixed []string
	if next.ASN != cur.ASN {
		fixed = append(fixed, fmt.Sprintf("asn %d -> %d", cur.ASN, next.ASN))
	}
	if next.RouterID != cur.RouterID {
		fixed = append(fixed, fmt.Sprintf("router_id %s -> %s", cur.RouterID, next.RouterID))
	}
	if next.ListenPort != cur.ListenPort {
		fixed = append(fixed, fmt.Sprintf("listen_port %d -> %d", cur.ListenPort, next.ListenPort))
	}
	if next.APIListen != cur.APIListen || next.AllowRemoteAPI != cur.AllowRemoteAPI {
		fixed = append(fixed, fmt.Sprintf("api_listen %q -> %q", cur.APIListen, next.APIListen))
	}
	if len(fixed) > 0 {
		return fmt.Errorf("bgp: reconfigure: %s: need a restart", strings.Join(fixed, ", "))
	}
	if s.state >= stateStopping {
		return ErrStopped
	}
	for _, p := range next.Peers {
		if p.Password != "" {
			if err := s.md5Probe(p.Address); err != nil {
				return fmt.Errorf("bgp: peer %s: MD5 password needs kernel TCP-MD5 support (CONFIG_TCP_MD5SIG): %w", p.Address, err)
			}
		}
	}
	defer func() { s.setPeers(s.cfg.Peers) }()
	if s.state == stateNew {
		s.cfg = next
		return nil
	}
	// Peers first, so that re-announced routes go to the final peer set.
	oldPeers := make(map[netip.Addr]Peer, len(cur.Peers))
	for _, p := range cur.Peers {
		oldPeers[p.Address] = p
	}
	applied := cur
	applied.Peers = slices.Clone(cur.Peers)
	grChanged := cur.GracefulRestart != next.GracefulRestart || cur.RestartTime != next.RestartTime
	newSet := make(map[netip.Addr]bool, len(next.Peers))
	for _, p := range next.Peers {
		newSet[p.Address] = true
	}
	for _, p := range cur.Peers {
		if newSet[p.Address] {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
			s.cfg = applied
			return fmt.Errorf("bgp: reconfigure: remove peer %s: %w", p.Address, err)
		}
		applied.Peers = slices.DeleteFunc(applied.Peers, func(q Peer) bool { return q.Address == p.Address })
		s.log.Info("peer removed", "peer", p.Address, "asn", p.ASN)
	}
	for _, p := range next.Peers {
		old, had := oldPeers[p.Address]
		switch {
		case !had:
			if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, next, false)}); err != nil {
				s.cfg = applied
				return fmt.Errorf("bgp: reconfigure: add peer %s: %w", p.Address, err)
			}
			applied.Peers = append(applied.Peers, p)
			s.log.Info("peer added", "peer", p.Address, "asn", p.ASN)
		case grChanged || !equalPeer(old, p):
			if _, err := s.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: apiPeer(p, next, false)}); err != nil {
				s.cfg = applied
				return fmt.Errorf("bgp: reconfigure: update peer %s: %w", p.Address, err)
			}
			for i := range applied.Peers {
				if applied.Peers[i].Address == p.Address {
					applied.Peers[i] = p
				}
			}
			s.log.Info("peer updated", "peer", p.Address, "asn", p.ASN)
		}
	}
	s.cfg = next
	for _, prefix := range sortedPrefixes(s.routes) {
		r := s.routes[prefix]
		if equalAttrs(effective(cur, r.attrs), effective(next, r.attrs)) && nextHopFor(cur, prefix) == nextHopFor(next, prefix) {
			continue
		}
		if err := s.addPath(ctx, s.srv, next, prefix, r.attrs); err != nil {
			return fmt.Errorf("bgp: reconfigure: %w", err)
		}
	}
	return nil
}

func equalPeer(a, b Peer) bool {
	return a.Address == b.Address && a.ASN == b.ASN && a.Description == b.Description &&
		a.Password == b.Password && a.MultihopTTL == b.MultihopTTL && a.HoldTime == b.HoldTime &&
		a.Keepalive == b.Keepalive && a.ConnectRetry == b.ConnectRetry && a.Passive == b.Passive &&
		slices.Equal(a.Families, b.Families) && a.Port == b.Port
}

// Stop withdraws every VIP, waits until each established peer has been
// sent the withdrawals (so peers drop the routes before the sessions
// close, instead of on the session going down), then closes the sessions
// with a Cease and stops the API. It is bounded by ctx (10 s if ctx has no
// deadline); on timeout the speaker is stopped anyway and the error says
// what was not confirmed.
//
// Stop is the shutdown path. For a hitless restart under graceful
// restart, do not call Stop: let the process exit (the kernel closes the
// sessions without a NOTIFICATION, so GR peers keep the routes as stale)
// and start the new process with Config.Restarting.
func (s *Speaker) Stop(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStopTimeout)
		defer cancel()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateNew:
		s.state = stateStopped
		close(s.stopped)
		return nil
	case stateStopping, stateStopped:
		return nil
	}
	s.state = stateStopping
	werr := s.withdrawAllAndWait(ctx)
	clear(s.routes)
	s.cancel()
	var serr error
	if d, ok := ctx.Deadline(); ok {
		if !stopServer(s.srv, time.Until(d)) {
			serr = fmt.Errorf("bgp: stop: gobgp did not finish closing sessions in time")
		}
	}
	s.state = stateStopped
	close(s.stopped)
	s.log.Info("bgp speaker stopped")
	return errors.Join(werr, serr)
}

// withdrawAllAndWait deletes every local path and waits until each peer
// that had routes has sent at least one UPDATE per such family since (the
// withdrawals; GoBGP counts a message once it is written to the socket)
// or has gone down. GoBGP's session teardown drops messages still queued,
// so without this wait a withdrawal could be lost and the peer would only
// drop the route when the session closes.
func (s *Speaker) withdrawAllAndWait(ctx context.Context) error {
	type pending struct {
		base, need uint64
	}
	wait := map[string]pending{}
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.GetState().GetSessionState() != api.PeerState_ESTABLISHED {
			return
		}
		var need uint64
		for _, af := range p.GetAfiSafis() {
			if af.GetState().GetAdvertised() > 0 {
				need++
			}
		}
		if need > 0 {
			wait[p.GetState().GetNeighborAddress()] = pending{base: p.GetState().GetMessages().GetSent().GetUpdate(), need: need}
		}
	})
	if err != nil {
		return fmt.Errorf("bgp: stop: list peers: %w", err)
	}
	n := len(s.routes)
	for _, fam := range []*api.Family{familyV4, familyV6} {
		if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: fam}); err != nil {
			return fmt.Errorf("bgp: stop: withdraw all: %w", err)
		}
	}
	start := time.Now()
	for len(wait) > 0 {
		_ = s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			addr := p.GetState().GetNeighborAddress()
			w, ok := wait[addr]
			if !ok {
				return
			}
			if p.GetState().GetSessionState() != api.PeerState_ESTABLISHED ||
				p.GetState().GetMessages().GetSent().GetUpdate() >= w.base+w.need {
				delete(wait, addr)
			}
		})
		if len(wait) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			addrs := make([]string, 0, len(wait))
			for a := range wait {
				addrs = append(addrs, a)
			}
			slices.Sort(addrs)
			return fmt.Errorf("bgp: stop: withdrawals to %s not confirmed sent: %w", strings.Join(addrs, ", "), ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	s.log.Info("all vips withdrawn", "routes", n, "confirmed_in", time.Since(start))
	return nil
}

// stopServer stops GoBGP (Cease to every peer, close listeners and API)
// and reports whether it finished within d. GoBGP's Stop has no context;
// if it hangs, its goroutine is left behind.
func stopServer(srv *server.BgpServer, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		srv.Stop()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// waitAPI returns once the gRPC API accepts connections, or the error
// GoBGP reported through its fatal path (it listens on a goroutine of its
// own and would otherwise only log).
func waitAPI(ctx context.Context, addr string, fatal <-chan error) error {
	network, address := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		network, address = "unix", p
	}
	ctx, cancel := context.WithTimeout(ctx, apiWait)
	defer cancel()
	var d net.Dialer
	for {
		select {
		case err := <-fatal:
			return fmt.Errorf("bgp: api_listen %s: %w", addr, err)
		default:
		}
		dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		c, err := d.DialContext(dctx, network, address)
		dcancel()
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-fatal:
			return fmt.Errorf("bgp: api_listen %s: %w", addr, err)
		case <-ctx.Done():
			return fmt.Errorf("bgp: api_listen %s: not accepting connections: %w", addr, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// probeListen binds the API address once and lets it go. GoBGP listens
// on a goroutine of its own and reports failure only through its fatal
// log path (which waitAPI also watches); a dial check alone would be
// fooled by another process already serving the port, so the port is
// proven free first. What remains is a short race with another process
// binding the port in between, which the fatal path then reports.
func probeListen(apiListen string) error {
	if apiListen == APIOff {
		return nil
	}
	network, address := "tcp", apiListen
	if p, ok := strings.CutPrefix(apiListen, "unix://"); ok {
		network, address = "unix", p
	}
	l, err := net.Listen(network, address)
	if err != nil {
		return fmt.Errorf("bgp: api_listen %s: %w", apiListen, err)
	}
	return l.Close()
}

// removeStaleSocket deletes a unix socket a previous run left behind, but
// only if nothing answers on it: a second vipcastd must fail, not steal
// the first one's API.
func removeStaleSocket(apiListen string) error {
	path, ok := strings.CutPrefix(apiListen, "unix://")
	if !ok {
		return nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("bgp: api_listen %s: exists and is not a socket", apiListen)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("bgp: api_listen %s: another process is serving on it", apiListen)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("bgp: api_listen %s: remove stale socket: %w", apiListen, err)
	}
	return nil
}

// restartPeerWait bounds how long a restarting speaker waits for one peer
// to come up before it adds the next (a peer that is down must not keep
// the others out; the routers hold our routes for the restart time).
const restartPeerWait = 3 * time.Second

// addRestartingPeers adds peers one by one, each once the one before is
// established or restartPeerWait has passed.
func (s *Speaker) addRestartingPeers(ctx context.Context, prev netip.Addr, peers []Peer) {
	for _, p := range peers {
		deadline := time.Now().Add(restartPeerWait)
		for time.Now().Before(deadline) {
			s.evMu.Lock()
			st := s.peerSt[prev]
			s.evMu.Unlock()
			if st == "established" {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		s.mu.Lock()
		if s.state != stateRunning || !slices.ContainsFunc(s.cfg.Peers, func(q Peer) bool { return q.Address == p.Address }) {
			s.mu.Unlock()
			return // stopped or reconfigured meanwhile
		}
		err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, s.cfg, true)})
		s.mu.Unlock()
		if err != nil {
			s.log.Error("add peer", "peer", p.Address, "err", err)
		}
		prev = p.Address
	}
}
