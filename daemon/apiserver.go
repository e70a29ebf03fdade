package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vipcast/api"
	"vipcast/internal/version"
	"vipcast/lb"
)

// Dataplane is what the API server needs of the balancer (lb.Balancer;
// tests may use a fake).
type Dataplane interface {
	AddVIP(lb.VIP) error
	DelVIP(lb.VIPKey) error
	SetVIPFlags(lb.VIPKey, lb.VIPFlags) error
	AddReal(lb.VIPKey, lb.Real) error
	UpdateReal(lb.VIPKey, lb.Real) error
	DelReal(lb.VIPKey, netip.Addr) error
	VIPs() []lb.VIPInfo
	Stats() (lb.Stats, error)
	VIPStats(lb.VIPKey) (lb.Counter, error)
	RealStats(lb.VIPKey, netip.Addr) (lb.Counter, error)
	SetGatewayMAC(net.HardwareAddr) error
}

// Marks is what the API server needs of the healthcheck program.
type Marks interface {
	AddMark(uint32, netip.Addr) error
	DelMark(uint32) error
	Marks() []lb.Mark
}

// GatewayInfo describes the gateway MAC in use and where it came from.
type GatewayInfo struct {
	MAC     net.HardwareAddr
	Source  string
	NextHop netip.Addr
	Err     string
}

// Daemon-side hooks the API exposes; each may be nil until its subsystem
// exists, and then the call answers Unavailable.
type hooks struct {
	gateway   func() GatewayInfo
	reload    func(ctx context.Context) ([]string, error)
	health    func() []*api.RealHealth
	neighbors func() []*api.Neighbor
	routes    func() []*api.Route
	announced func(netip.Addr) bool
	healthOf  func(lb.VIPKey, netip.Addr) string
	logLevel  *slog.LevelVar
	drain     func() ([]string, time.Duration)
}

// apiServer implements api.VipcastServer over the data plane.
type apiServer struct {
	api.UnimplementedVipcastServer
	dp    Dataplane
	marks Marks
	hooks hooks
	// onGatewaySet is told when an operator sets the MAC by hand.
	onGatewaySet func(net.HardwareAddr)
}

// grpcError maps lb's error kinds to gRPC codes, keeping the message that
// names the object.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, lb.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, lb.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, lb.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, lb.ErrFull):
		code = codes.ResourceExhausted
	}
	return status.Error(code, trimKind(err))
}

// trimKind drops the trailing ": invalid argument" that lb's sentinels add:
// the gRPC code already says it.
func trimKind(err error) string {
	msg := err.Error()
	for _, kind := range []error{lb.ErrInvalid, lb.ErrNotFound, lb.ErrExists, lb.ErrFull} {
		suffix := ": " + kind.Error()
		if len(msg) > len(suffix) && msg[len(msg)-len(suffix):] == suffix {
			if kind == lb.ErrNotFound || kind == lb.ErrExists {
				return msg // "vip X: not found" reads well as it is
			}
			return msg[:len(msg)-len(suffix)]
		}
	}
	return msg
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func vipKeyFromAPI(k *api.VIPKey) (lb.VIPKey, error) {
	if k == nil {
		return lb.VIPKey{}, invalid("vip: missing")
	}
	addr, err := netip.ParseAddr(k.GetAddress())
	if err != nil {
		return lb.VIPKey{}, invalid("vip address %q: %v", k.GetAddress(), err)
	}
	if k.GetPort() > 65535 {
		return lb.VIPKey{}, invalid("vip port: must be 0..65535, got %d", k.GetPort())
	}
	proto, err := lb.ParseProto(k.GetProtocol())
	if err != nil {
		return lb.VIPKey{}, invalid("vip %s: %s", k.GetAddress(), trimKind(err))
	}
	return lb.VIPKey{Addr: addr, Port: uint16(k.GetPort()), Proto: proto}, nil
}

func vipKeyToAPI(k lb.VIPKey) *api.VIPKey {
	return &api.VIPKey{Address: k.Addr.String(), Port: uint32(k.Port), Protocol: k.Proto.String()}
}

func flagsFromAPI(names []string) (lb.VIPFlags, error) {
	var f lb.VIPFlags
	for _, n := range names {
		one, err := lb.ParseFlags(n)
		if err != nil {
			return 0, invalid("%s", trimKind(err))
		}
		f |= one
	}
	return f, nil
}

func flagNames(f lb.VIPFlags) []string {
	var out []string
	for _, n := range lb.FlagNames() {
		one, _ := lb.ParseFlags(n)
		if f&one != 0 {
			out = append(out, n)
		}
	}
	return out
}

func parseRealAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, invalid("real address %q: %v", s, err)
	}
	return a, nil
}

func parseState(s string) (lb.RealState, error) {
	switch s {
	case "", "up":
		return lb.Up, nil
	case "draining", "drain":
		return lb.Draining, nil
	case "down":
		return lb.Down, nil
	}
	return 0, invalid("real state %q: must be up, draining or down", s)
}

func (s *apiServer) GetVersion(context.Context, *api.GetVersionRequest) (*api.GetVersionResponse, error) {
	return &api.GetVersionResponse{Version: version.String(), GoVersion: runtime.Version()}, nil
}

func (s *apiServer) AddVIP(_ context.Context, req *api.AddVIPRequest) (*api.AddVIPResponse, error) {
	key, err := vipKeyFromAPI(req.GetVip().GetKey())
	if err != nil {
		return nil, err
	}
	flags, err := flagsFromAPI(req.GetVip().GetFlags())
	if err != nil {
		return nil, err
	}
	return &api.AddVIPResponse{}, grpcError(s.dp.AddVIP(lb.VIP{Key: key, Flags: flags, RingSize: req.GetVip().GetRingSize()}))
}

func (s *apiServer) DeleteVIP(_ context.Context, req *api.DeleteVIPRequest) (*api.DeleteVIPResponse, error) {
	key, err := vipKeyFromAPI(req.GetKey())
	if err != nil {
		return nil, err
	}
	return &api.DeleteVIPResponse{}, grpcError(s.dp.DelVIP(key))
}

func (s *apiServer) SetVIP(_ context.Context, req *api.SetVIPRequest) (*api.SetVIPResponse, error) {
	key, err := vipKeyFromAPI(req.GetVip().GetKey())
	if err != nil {
		return nil, err
	}
	flags, err := flagsFromAPI(req.GetVip().GetFlags())
	if err != nil {
		return nil, err
	}
	if req.GetVip().GetRingSize() != 0 {
		return nil, invalid("vip %s: ring_size cannot change on a live VIP; delete and add it", key)
	}
	return &api.SetVIPResponse{}, grpcError(s.dp.SetVIPFlags(key, flags))
}

func (s *apiServer) ListVIPs(context.Context, *api.ListVIPsRequest) (*api.ListVIPsResponse, error) {
	resp := &api.ListVIPsResponse{}
	for _, v := range s.dp.VIPs() {
		info := &api.VIPInfo{Vip: &api.VIP{Key: vipKeyToAPI(v.Key), Flags: flagNames(v.Flags), RingSize: v.RingSize}}
		for _, r := range v.Reals {
			ar := &api.Real{Address: r.Addr.String(), Weight: r.Weight, State: r.State.String()}
			if s.hooks.healthOf != nil {
				ar.Health = s.hooks.healthOf(v.Key, r.Addr)
			}
			info.Reals = append(info.Reals, ar)
		}
		if s.hooks.announced != nil {
			info.Announced = s.hooks.announced(v.Key.Addr)
		}
		resp.Vips = append(resp.Vips, info)
	}
	return resp, nil
}

func (s *apiServer) AddReal(_ context.Context, req *api.AddRealRequest) (*api.AddRealResponse, error) {
	key, err := vipKeyFromAPI(req.GetVip())
	if err != nil {
		return nil, err
	}
	addr, err := parseRealAddr(req.GetReal().GetAddress())
	if err != nil {
		return nil, err
	}
	st, err := parseState(req.GetReal().GetState())
	if err != nil {
		return nil, err
	}
	return &api.AddRealResponse{}, grpcError(s.dp.AddReal(key, lb.Real{Addr: addr, Weight: req.GetReal().GetWeight(), State: st}))
}

func (s *apiServer) DeleteReal(_ context.Context, req *api.DeleteRealRequest) (*api.DeleteRealResponse, error) {
	key, err := vipKeyFromAPI(req.GetVip())
	if err != nil {
		return nil, err
	}
	addr, err := parseRealAddr(req.GetAddress())
	if err != nil {
		return nil, err
	}
	return &api.DeleteRealResponse{}, grpcError(s.dp.DelReal(key, addr))
}

func (s *apiServer) SetReal(_ context.Context, req *api.SetRealRequest) (*api.SetRealResponse, error) {
	key, err := vipKeyFromAPI(req.GetVip())
	if err != nil {
		return nil, err
	}
	addr, err := parseRealAddr(req.GetAddress())
	if err != nil {
		return nil, err
	}
	var cur *lb.Real
	for _, v := range s.dp.VIPs() {
		if v.Key != key {
			continue
		}
		for _, r := range v.Reals {
			if r.Addr == addr {
				cur = &r
			}
		}
		if cur == nil {
			return nil, status.Errorf(codes.NotFound, "vip %s: real %s: not found", key, addr)
		}
	}
	if cur == nil {
		return nil, status.Errorf(codes.NotFound, "vip %s: not found", key)
	}
	next := *cur
	if req.Weight != nil {
		next.Weight = req.GetWeight()
	}
	if req.State != nil {
		if next.State, err = parseState(req.GetState()); err != nil {
			return nil, err
		}
	}
	return &api.SetRealResponse{}, grpcError(s.dp.UpdateReal(key, next))
}

func (s *apiServer) AddHealthcheckMark(_ context.Context, req *api.AddHealthcheckMarkRequest) (*api.AddHealthcheckMarkResponse, error) {
	if s.marks == nil {
		return nil, status.Error(codes.FailedPrecondition, "healthcheck forwarding is off (hc_forwarding = false)")
	}
	addr, err := parseRealAddr(req.GetMark().GetReal())
	if err != nil {
		return nil, err
	}
	err = s.marks.AddMark(req.GetMark().GetMark(), addr)
	if errors.Is(err, lb.ErrFull) {
		// Name the setting behind the limit: vipcastd sizes the table.
		err = fmt.Errorf("%w (the table holds hc_mark_range's marks plus %d set by hand)", err, operatorMarks)
	}
	return &api.AddHealthcheckMarkResponse{}, grpcError(err)
}

func (s *apiServer) DeleteHealthcheckMark(_ context.Context, req *api.DeleteHealthcheckMarkRequest) (*api.DeleteHealthcheckMarkResponse, error) {
	if s.marks == nil {
		return nil, status.Error(codes.FailedPrecondition, "healthcheck forwarding is off (hc_forwarding = false)")
	}
	return &api.DeleteHealthcheckMarkResponse{}, grpcError(s.marks.DelMark(req.GetMark()))
}

func (s *apiServer) ListHealthcheckMarks(context.Context, *api.ListHealthcheckMarksRequest) (*api.ListHealthcheckMarksResponse, error) {
	resp := &api.ListHealthcheckMarksResponse{}
	if s.marks == nil {
		return resp, nil
	}
	for _, m := range s.marks.Marks() {
		resp.Marks = append(resp.Marks, &api.HealthcheckMark{Mark: m.Mark, Real: m.Real.String()})
	}
	return resp, nil
}

func (s *apiServer) GetStats(context.Context, *api.GetStatsRequest) (*api.GetStatsResponse, error) {
	g, err := s.dp.Stats()
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &api.GetStatsResponse{Global: globalStats(g), ReadAtUnixNano: time.Now().UnixNano()}
	for _, v := range s.dp.VIPs() {
		c, err := s.dp.VIPStats(v.Key)
		if errors.Is(err, lb.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, grpcError(err)
		}
		vs := &api.VIPStats{Key: vipKeyToAPI(v.Key), Counter: &api.Counter{Packets: c.Packets, Bytes: c.Bytes}}
		for _, r := range v.Reals {
			rc, err := s.dp.RealStats(v.Key, r.Addr)
			if err != nil {
				continue
			}
			vs.Reals = append(vs.Reals, &api.RealStats{Address: r.Addr.String(), Counter: &api.Counter{Packets: rc.Packets, Bytes: rc.Bytes}})
		}
		resp.Vips = append(resp.Vips, vs)
	}
	return resp, nil
}

func globalStats(g lb.Stats) *api.GlobalStats {
	return &api.GlobalStats{
		XdpAborted: g.XdpAborted, XdpDrop: g.XdpDrop, XdpPass: g.XdpPass, XdpTx: g.XdpTx,
		ConnHit: g.ConnHit, FallbackHit: g.FallbackHit,
		ConnMissTcpSyn: g.ConnMissTcpSyn, ConnMissTcpOther: g.ConnMissTcpOther, ConnMissUdp: g.ConnMissUdp,
		ConnRepickDown: g.ConnRepickDown,
		IcmpEchoReply:  g.IcmpEchoReply, IcmpTooBig: g.IcmpTooBig, IcmpErrorFwd: g.IcmpErrorFwd,
		DropFragment: g.DropFragment, DropIpOptions: g.DropIpOptions, DropMalformed: g.DropMalformed,
		DropNoReal: g.DropNoReal, DropNoGateway: g.DropNoGateway, DropTooBig: g.DropTooBig,
		PassMalformed: g.PassMalformed,
	}
}

func (s *apiServer) GetGateway(context.Context, *api.GetGatewayRequest) (*api.GetGatewayResponse, error) {
	if s.hooks.gateway == nil {
		return nil, status.Error(codes.Unavailable, "gateway resolution is not running")
	}
	g := s.hooks.gateway()
	resp := &api.GetGatewayResponse{Source: g.Source, Error: g.Err}
	if g.MAC != nil {
		resp.Mac = g.MAC.String()
	}
	if g.NextHop.IsValid() {
		resp.NextHop = g.NextHop.String()
	}
	return resp, nil
}

func (s *apiServer) SetGateway(_ context.Context, req *api.SetGatewayRequest) (*api.SetGatewayResponse, error) {
	mac, err := net.ParseMAC(req.GetMac())
	if err != nil || len(mac) != 6 {
		return nil, invalid("gateway mac %q: must be a 6-byte Ethernet address such as 52:54:00:12:35:02", req.GetMac())
	}
	if mac[0]&1 == 1 {
		return nil, invalid("gateway mac %s: must be unicast", mac)
	}
	if err := s.dp.SetGatewayMAC(mac); err != nil {
		return nil, grpcError(err)
	}
	if s.onGatewaySet != nil {
		s.onGatewaySet(mac)
	}
	return &api.SetGatewayResponse{}, nil
}

func (s *apiServer) Reload(ctx context.Context, _ *api.ReloadRequest) (*api.ReloadResponse, error) {
	if s.hooks.reload == nil {
		return nil, status.Error(codes.Unavailable, "reload is not available")
	}
	changes, err := s.hooks.reload(ctx)
	if err != nil {
		// The CLI says "reload rejected, running state kept"; the message
		// names what is wrong in the file.
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &api.ReloadResponse{Changes: changes}, nil
}

func (s *apiServer) ListHealth(context.Context, *api.ListHealthRequest) (*api.ListHealthResponse, error) {
	if s.hooks.health == nil {
		return &api.ListHealthResponse{}, nil
	}
	return &api.ListHealthResponse{Reals: s.hooks.health()}, nil
}

func (s *apiServer) ListNeighbors(context.Context, *api.ListNeighborsRequest) (*api.ListNeighborsResponse, error) {
	if s.hooks.neighbors == nil {
		return &api.ListNeighborsResponse{}, nil
	}
	return &api.ListNeighborsResponse{Neighbors: s.hooks.neighbors()}, nil
}

func (s *apiServer) ListRoutes(context.Context, *api.ListRoutesRequest) (*api.ListRoutesResponse, error) {
	if s.hooks.routes == nil {
		return &api.ListRoutesResponse{}, nil
	}
	return &api.ListRoutesResponse{Routes: s.hooks.routes()}, nil
}

func (s *apiServer) LogLevel(_ context.Context, req *api.LogLevelRequest) (*api.LogLevelResponse, error) {
	if s.hooks.logLevel == nil {
		return nil, status.Error(codes.Unavailable, "the log level cannot be changed in this process")
	}
	prev := strings.ToLower(s.hooks.logLevel.Level().String())
	if req.GetLevel() != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(req.GetLevel())); err != nil {
			return nil, invalid("log level %q: must be debug, info, warn or error", req.GetLevel())
		}
		s.hooks.logLevel.Set(l)
	}
	return &api.LogLevelResponse{Level: strings.ToLower(s.hooks.logLevel.Level().String()), Previous: prev}, nil
}

func (s *apiServer) Drain(context.Context, *api.DrainRequest) (*api.DrainResponse, error) {
	if s.hooks.drain == nil {
		return nil, status.Error(codes.Unavailable, "drain is not available")
	}
	withdrawn, wait := s.hooks.drain()
	return &api.DrainResponse{Withdrawn: withdrawn, DrainSeconds: int64(wait / time.Second)}, nil
}
