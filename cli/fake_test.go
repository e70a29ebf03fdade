package cli

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vipcast/api"
)

// fakeServer is an in-memory vipcastd: it keeps VIPs, reals, marks and the
// gateway, and validates requests the way the daemon does for the cases the
// tests cover (codes and messages naming the bad value). Health, BGP and
// reload answers are canned. Counters grow with every GetStats call so that
// rates can be computed.
type fakeServer struct {
	api.UnimplementedVipcastServer

	mu       sync.Mutex
	vips     map[fakeKey]*fakeVIP
	marks    map[uint32]string
	gateway  *api.GetGatewayResponse
	maxVIPs  int
	health   []*api.RealHealth
	peers    []*api.Neighbor
	routes   []*api.Route
	changes  []string
	reload   error // what Reload fails with, if set
	delay    time.Duration
	statsN   uint64
	idle     bool // counters stop growing after the first GetStats
	announce map[fakeKey]bool
	level    string
}

type fakeKey struct {
	addr  netip.Addr
	port  uint16
	proto string
}

func (k fakeKey) String() string {
	return netip.AddrPortFrom(k.addr, k.port).String() + "/" + k.proto
}

type fakeVIP struct {
	flags []string
	ring  uint32
	reals map[netip.Addr]*api.Real
}

func newFake() *fakeServer {
	return &fakeServer{
		vips:     map[fakeKey]*fakeVIP{},
		marks:    map[uint32]string{},
		gateway:  &api.GetGatewayResponse{Error: "no default route"},
		maxVIPs:  16,
		announce: map[fakeKey]bool{},
	}
}

// seed fills f with the state most tests start from: two IPv4 VIPs and one
// IPv6 VIP with reals in various states, three marks, a resolved gateway,
// two BGP peers and their routes.
func (f *fakeServer) seed() {
	ctx := context.Background()
	must := func(_ any, err error) {
		if err != nil {
			panic(err)
		}
	}
	key := func(addr string, port uint32, proto string) *api.VIPKey {
		return &api.VIPKey{Address: addr, Port: port, Protocol: proto}
	}
	web, dns, web6 := key("203.0.113.1", 80, "tcp"), key("203.0.113.2", 53, "udp"), key("2001:db8:f00::1", 443, "tcp")
	must(f.AddVIP(ctx, &api.AddVIPRequest{Vip: &api.VIP{Key: web}}))
	must(f.AddVIP(ctx, &api.AddVIPRequest{Vip: &api.VIP{Key: dns, Flags: []string{"no_src_port", "dport_only"}, RingSize: 4099}}))
	must(f.AddVIP(ctx, &api.AddVIPRequest{Vip: &api.VIP{Key: web6, Flags: []string{"lru_bypass"}}}))
	for _, r := range []struct {
		vip    *api.VIPKey
		addr   string
		weight uint32
		state  string
		health string
	}{
		{web, "198.51.100.12", 10, "draining", "up"},
		{web, "198.51.100.11", 10, "up", "up"},
		{web, "198.51.100.13", 5, "up", "down"},
		{dns, "198.51.100.21", 1, "up", ""},
		{dns, "2001:db8:1::21", 1, "up", "unknown"},
		{web6, "2001:db8:1::11", 100, "up", "up"},
	} {
		must(f.AddReal(ctx, &api.AddRealRequest{Vip: r.vip, Real: &api.Real{Address: r.addr, Weight: r.weight, State: r.state}}))
		f.vips[mustKey(r.vip)].reals[netip.MustParseAddr(r.addr)].Health = r.health
	}
	f.announce[mustKey(web)] = true
	f.announce[mustKey(web6)] = true
	f.marks = map[uint32]string{1001: "198.51.100.12", 1000: "198.51.100.11", 1002: "2001:db8:1::11"}
	f.gateway = &api.GetGatewayResponse{Mac: "52:54:00:12:35:02", Source: "arp", NextHop: "192.0.2.1"}
	f.health = []*api.RealHealth{
		{Vip: web, Real: "198.51.100.13", State: "down", LastError: "connect: connection refused", LastLatencyNanos: 312_000, Mark: 1003, SinceUnixNano: 1_764_000_000_000_000_000},
		{Vip: web, Real: "198.51.100.11", State: "up", LastLatencyNanos: 1_234_567, Mark: 1000, LastOk: true, SinceUnixNano: 1_763_990_000_000_000_000},
		{Vip: web6, Real: "2001:db8:1::11", State: "up", LastLatencyNanos: 2_500_000_000, Mark: 1002},
		{Vip: dns, Real: "2001:db8:1::21", State: "unknown"},
	}
	med := uint32(50)
	pref := uint32(200)
	f.peers = []*api.Neighbor{
		{Address: "192.0.2.254", Asn: 64512, State: "established", UptimeSeconds: 93784, PrefixesSent: 2, Description: "tor-b"},
		{Address: "192.0.2.253", Asn: 64512, State: "established", UptimeSeconds: 250, PrefixesSent: 2, Description: "tor-a"},
		{Address: "2001:db8::fe", Asn: 64513, State: "active"},
	}
	f.routes = []*api.Route{
		{Prefix: "2001:db8:f00::1/128", Communities: []string{"64512:100"}},
		{Prefix: "203.0.113.1/32", Communities: []string{"64512:100", "64512:200"}, Med: &med, LocalPref: &pref},
	}
	f.changes = []string{
		"vip 203.0.113.3:80/tcp: added",
		"vip 203.0.113.1:80/tcp: real 198.51.100.14 added (weight 10)",
		"vip 203.0.113.2:53/udp: deleted",
	}
}

func mustKey(k *api.VIPKey) fakeKey {
	key, err := parseFakeKey(k)
	if err != nil {
		panic(err)
	}
	return key
}

// parseFakeKey validates a VIP key like the daemon.
func parseFakeKey(k *api.VIPKey) (fakeKey, error) {
	addr, err := netip.ParseAddr(k.GetAddress())
	if err != nil {
		return fakeKey{}, status.Errorf(codes.InvalidArgument, "vip address %q: not an IP address", k.GetAddress())
	}
	if k.GetPort() > 65535 {
		return fakeKey{}, status.Errorf(codes.InvalidArgument, "vip port %d: must be 0..65535", k.GetPort())
	}
	if p := k.GetProtocol(); p != "tcp" && p != "udp" {
		return fakeKey{}, status.Errorf(codes.InvalidArgument, "vip protocol %q: must be tcp or udp", p)
	}
	return fakeKey{addr: addr, port: uint16(k.GetPort()), proto: k.GetProtocol()}, nil
}

func (f *fakeServer) vip(k *api.VIPKey) (fakeKey, *fakeVIP, error) {
	key, err := parseFakeKey(k)
	if err != nil {
		return key, nil, err
	}
	v, ok := f.vips[key]
	if !ok {
		return key, nil, status.Errorf(codes.NotFound, "vip %s: not found", key)
	}
	return key, v, nil
}

func checkFakeVIP(v *api.VIP) error {
	for _, fl := range v.GetFlags() {
		if !slices.Contains(vipFlags(), fl) {
			return status.Errorf(codes.InvalidArgument, "vip flags: unknown flag %q", fl)
		}
	}
	if n := v.GetRingSize(); n != 0 && !isPrime(uint64(n)) {
		return status.Errorf(codes.InvalidArgument, "vip ring_size %d: must be a prime number in 3..16777216", n)
	}
	return nil
}

func (f *fakeServer) GetVersion(context.Context, *api.GetVersionRequest) (*api.GetVersionResponse, error) {
	return &api.GetVersionResponse{Version: "v0.1.0", GoVersion: "go1.26.8"}, nil
}

func (f *fakeServer) AddVIP(_ context.Context, req *api.AddVIPRequest) (*api.AddVIPResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key, err := parseFakeKey(req.GetVip().GetKey())
	if err != nil {
		return nil, err
	}
	if err := checkFakeVIP(req.GetVip()); err != nil {
		return nil, err
	}
	if _, ok := f.vips[key]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "vip %s: already exists", key)
	}
	if len(f.vips) >= f.maxVIPs {
		return nil, status.Errorf(codes.ResourceExhausted, "vip %s: VIP table full (%d of %d); raise max_vips", key, len(f.vips), f.maxVIPs)
	}
	ring := req.GetVip().GetRingSize()
	if ring == 0 {
		ring = 65537
	}
	f.vips[key] = &fakeVIP{flags: slices.Clone(req.GetVip().GetFlags()), ring: ring, reals: map[netip.Addr]*api.Real{}}
	return &api.AddVIPResponse{}, nil
}

func (f *fakeServer) DeleteVIP(_ context.Context, req *api.DeleteVIPRequest) (*api.DeleteVIPResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key, _, err := f.vip(req.GetKey())
	if err != nil {
		return nil, err
	}
	delete(f.vips, key)
	return &api.DeleteVIPResponse{}, nil
}

func (f *fakeServer) SetVIP(_ context.Context, req *api.SetVIPRequest) (*api.SetVIPResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, err := f.vip(req.GetVip().GetKey())
	if err != nil {
		return nil, err
	}
	if err := checkFakeVIP(req.GetVip()); err != nil {
		return nil, err
	}
	v.flags = slices.Clone(req.GetVip().GetFlags())
	if v.ring = req.GetVip().GetRingSize(); v.ring == 0 {
		v.ring = 65537
	}
	return &api.SetVIPResponse{}, nil
}

func (f *fakeServer) ListVIPs(ctx context.Context, _ *api.ListVIPsRequest) (*api.ListVIPsResponse, error) {
	f.mu.Lock()
	delay := f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &api.ListVIPsResponse{}
	// Map order: the CLI must sort.
	for key, v := range f.vips {
		info := &api.VIPInfo{
			Vip:       &api.VIP{Key: &api.VIPKey{Address: key.addr.String(), Port: uint32(key.port), Protocol: key.proto}, Flags: slices.Clone(v.flags), RingSize: v.ring},
			Announced: f.announce[key],
		}
		for _, r := range v.reals {
			info.Reals = append(info.Reals, &api.Real{Address: r.Address, Weight: r.Weight, State: r.State, Health: r.Health})
		}
		resp.Vips = append(resp.Vips, info)
	}
	return resp, nil
}

func (f *fakeServer) AddReal(_ context.Context, req *api.AddRealRequest) (*api.AddRealResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key, v, err := f.vip(req.GetVip())
	if err != nil {
		return nil, err
	}
	addr, err := netip.ParseAddr(req.GetReal().GetAddress())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "real address %q: not an IP address", req.GetReal().GetAddress())
	}
	if key.addr.Is6() && addr.Is4() {
		return nil, status.Errorf(codes.InvalidArgument, "real %s: vip %s is IPv6 and takes only IPv6 reals", addr, key)
	}
	if w := req.GetReal().GetWeight(); w > maxWeight {
		return nil, status.Errorf(codes.InvalidArgument, "real %s weight %d: must be 0..65535", addr, w)
	}
	if _, ok := v.reals[addr]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "vip %s: real %s: already exists", key, addr)
	}
	state := cmp.Or(req.GetReal().GetState(), "up")
	v.reals[addr] = &api.Real{Address: addr.String(), Weight: req.GetReal().GetWeight(), State: state, Health: "unknown"}
	return &api.AddRealResponse{}, nil
}

func (f *fakeServer) real(vip *api.VIPKey, address string) (fakeKey, *fakeVIP, netip.Addr, error) {
	key, v, err := f.vip(vip)
	if err != nil {
		return key, nil, netip.Addr{}, err
	}
	addr, err := netip.ParseAddr(address)
	if err != nil {
		return key, nil, addr, status.Errorf(codes.InvalidArgument, "real address %q: not an IP address", address)
	}
	if _, ok := v.reals[addr]; !ok {
		return key, nil, addr, status.Errorf(codes.NotFound, "vip %s: real %s: not found", key, addr)
	}
	return key, v, addr, nil
}

func (f *fakeServer) DeleteReal(_ context.Context, req *api.DeleteRealRequest) (*api.DeleteRealResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, addr, err := f.real(req.GetVip(), req.GetAddress())
	if err != nil {
		return nil, err
	}
	delete(v.reals, addr)
	return &api.DeleteRealResponse{}, nil
}

func (f *fakeServer) SetReal(_ context.Context, req *api.SetRealRequest) (*api.SetRealResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, addr, err := f.real(req.GetVip(), req.GetAddress())
	if err != nil {
		return nil, err
	}
	if req.Weight != nil && req.GetWeight() > maxWeight {
		return nil, status.Errorf(codes.InvalidArgument, "real %s weight %d: must be 0..65535", addr, req.GetWeight())
	}
	if req.State != nil && !slices.Contains([]string{"up", "draining", "down"}, req.GetState()) {
		return nil, status.Errorf(codes.InvalidArgument, "real %s state %q: must be up, draining or down", addr, req.GetState())
	}
	r := v.reals[addr]
	if req.Weight != nil {
		r.Weight = req.GetWeight()
	}
	if req.State != nil {
		r.State = req.GetState()
	}
	return &api.SetRealResponse{}, nil
}

func (f *fakeServer) AddHealthcheckMark(_ context.Context, req *api.AddHealthcheckMarkRequest) (*api.AddHealthcheckMarkResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := req.GetMark()
	if m.GetMark() == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "hc mark 0: must be 1..4294967295")
	}
	if _, err := netip.ParseAddr(m.GetReal()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "hc real %q: not an IP address", m.GetReal())
	}
	if r, ok := f.marks[m.GetMark()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "hc mark %d: already maps to %s", m.GetMark(), r)
	}
	f.marks[m.GetMark()] = m.GetReal()
	return &api.AddHealthcheckMarkResponse{}, nil
}

func (f *fakeServer) DeleteHealthcheckMark(_ context.Context, req *api.DeleteHealthcheckMarkRequest) (*api.DeleteHealthcheckMarkResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.marks[req.GetMark()]; !ok {
		return nil, status.Errorf(codes.NotFound, "hc mark %d: not found", req.GetMark())
	}
	delete(f.marks, req.GetMark())
	return &api.DeleteHealthcheckMarkResponse{}, nil
}

func (f *fakeServer) ListHealthcheckMarks(context.Context, *api.ListHealthcheckMarksRequest) (*api.ListHealthcheckMarksResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &api.ListHealthcheckMarksResponse{}
	for m, r := range f.marks {
		resp.Marks = append(resp.Marks, &api.HealthcheckMark{Mark: m, Real: r})
	}
	return resp, nil
}

// fakeEpoch is when the fake's first GetStats reads its counters; each
// later call is one second on.
var fakeEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// GetStats answers call n (from 1) with counters step*n*(n+1)/2, so that
// the growth between calls n-1 and n is step*n: watched rates double from
// the first line to the second while the percentages stay.
func (f *fakeServer) GetStats(context.Context, *api.GetStatsRequest) (*api.GetStatsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statsN++
	n := f.statsN
	readAt := fakeEpoch.Add(time.Duration(n-1) * time.Second).UnixNano()
	if f.idle {
		n = 1
	}
	c := func(step uint64) uint64 { return step * n * (n + 1) / 2 }
	resp := &api.GetStatsResponse{
		ReadAtUnixNano: readAt,
		Global: &api.GlobalStats{
			XdpAborted: 0, XdpDrop: c(12), XdpPass: c(3_400), XdpTx: c(1_200_000),
			ConnHit: c(1_150_000), FallbackHit: c(30),
			ConnMissTcpSyn: c(20_000), ConnMissTcpOther: c(5_000), ConnMissUdp: c(25_000),
			ConnRepickDown: c(7), IcmpEchoReply: c(5), IcmpTooBig: c(2), IcmpErrorFwd: c(1),
			DropFragment: c(3), DropIpOptions: c(1), DropMalformed: c(4), DropNoReal: 0,
			DropNoGateway: 0, DropTooBig: c(1), PassMalformed: c(2),
		},
	}
	keys := make([]fakeKey, 0, len(f.vips))
	for k := range f.vips {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y fakeKey) int { return strings.Compare(x.String(), y.String()) })
	for i, k := range keys {
		vs := &api.VIPStats{Key: &api.VIPKey{Address: k.addr.String(), Port: uint32(k.port), Protocol: k.proto}}
		var total uint64
		reals := f.vips[k].reals
		for addr := range reals {
			// Each real's share depends on its address, not on map order.
			share := c(uint64(addr.As16()[15]) * 1_000 * uint64(i+1))
			vs.Reals = append(vs.Reals, &api.RealStats{Address: addr.String(), Counter: &api.Counter{Packets: share, Bytes: share * 700}})
			total += share
		}
		total += c(uint64(i) * 500)
		vs.Counter = &api.Counter{Packets: total, Bytes: total * 700}
		resp.Vips = append(resp.Vips, vs)
	}
	return resp, nil
}

func (f *fakeServer) GetGateway(context.Context, *api.GetGatewayRequest) (*api.GetGatewayResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &api.GetGatewayResponse{Mac: f.gateway.Mac, Source: f.gateway.Source, NextHop: f.gateway.NextHop, Error: f.gateway.Error}, nil
}

func (f *fakeServer) SetGateway(_ context.Context, req *api.SetGatewayRequest) (*api.SetGatewayResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mac, err := net.ParseMAC(req.GetMac())
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
		return nil, status.Errorf(codes.InvalidArgument, "gateway mac %q: must be a unicast Ethernet address", req.GetMac())
	}
	f.gateway = &api.GetGatewayResponse{Mac: mac.String(), Source: "api", NextHop: f.gateway.NextHop}
	return &api.SetGatewayResponse{}, nil
}

func (f *fakeServer) Reload(context.Context, *api.ReloadRequest) (*api.ReloadResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reload != nil {
		return nil, f.reload
	}
	return &api.ReloadResponse{Changes: slices.Clone(f.changes)}, nil
}

func (f *fakeServer) Drain(context.Context, *api.DrainRequest) (*api.DrainResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, on := range f.announce {
		if on {
			out = append(out, k.addr.String())
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return &api.DrainResponse{Withdrawn: out, DrainSeconds: 10}, nil
}

func (f *fakeServer) LogLevel(_ context.Context, req *api.LogLevelRequest) (*api.LogLevelResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.level == "" {
		f.level = "info"
	}
	prev := f.level
	if req.GetLevel() != "" {
		f.level = req.GetLevel()
	}
	return &api.LogLevelResponse{Level: f.level, Previous: prev}, nil
}

func (f *fakeServer) ListHealth(context.Context, *api.ListHealthRequest) (*api.ListHealthResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &api.ListHealthResponse{Reals: f.health}, nil
}

func (f *fakeServer) ListNeighbors(context.Context, *api.ListNeighborsRequest) (*api.ListNeighborsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &api.ListNeighborsResponse{Neighbors: f.peers}, nil
}

func (f *fakeServer) ListRoutes(context.Context, *api.ListRoutesRequest) (*api.ListRoutesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &api.ListRoutesResponse{Routes: f.routes}, nil
}

// snapshot renders the fake's mutable state, to check that a failed command
// changed nothing.
func (f *fakeServer) snapshot() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	for k, v := range f.vips {
		lines = append(lines, fmt.Sprintf("vip %s flags=%v ring=%d", k, v.flags, v.ring))
		for _, r := range v.reals {
			lines = append(lines, fmt.Sprintf("vip %s real %s weight=%d state=%s", k, r.Address, r.Weight, r.State))
		}
	}
	for m, r := range f.marks {
		lines = append(lines, fmt.Sprintf("mark %d %s", m, r))
	}
	lines = append(lines, fmt.Sprintf("gateway %s %s", f.gateway.Mac, f.gateway.Source))
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// serve starts f on a unix socket in a fresh temporary directory and
// returns the socket's path; the server stops when the test ends.
func serve(t *testing.T, f *fakeServer) string {
	t.Helper()
	sock := filepath.Join(socketDir(t), "vipcast.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	api.RegisterVipcastServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return sock
}

// socketDir is t.TempDir unless that is too long for a unix socket path
// (108 bytes), as with a long $TMPDIR.
func socketDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("/tmp", "vipcast")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
