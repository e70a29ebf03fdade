package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vipcast/api"
	"vipcast/lb"
	"vipcast/lb/maglev"
)

// The API server's request validation under fuzzing: whatever a client
// sends, a call either fails with one of the documented codes before the
// data plane changed, or succeeds having changed exactly what it asked for.
// It never panics.

// recordingDataplane is the fuzzed server's Dataplane and Marks: a small
// model that checks its input the way lb does (so that the data plane's own
// errors occur too) and records every change it applies.
type recordingDataplane struct {
	vips     map[lb.VIPKey]*lb.VIPInfo
	marks    map[uint32]netip.Addr
	gateway  net.HardwareAddr
	maxVIPs  int
	maxReals int
	maxMarks int
	applied  []string // one line per change made
	last     any      // the argument of the last change
}

var (
	_ Dataplane = (*recordingDataplane)(nil)
	_ Marks     = (*recordingDataplane)(nil)
)

func (d *recordingDataplane) apply(what string, arg any) error {
	d.applied = append(d.applied, what)
	d.last = arg
	return nil
}

func (d *recordingDataplane) nReals() int {
	n := 0
	for _, v := range d.vips {
		n += len(v.Reals)
	}
	return n
}

func validVIP(v lb.VIP) error {
	if k, err := lb.ParseVIPKey(v.Key.String()); err != nil || k != v.Key {
		return fmt.Errorf("vip %s: bad key: %w", v.Key, lb.ErrInvalid)
	}
	if v.RingSize != 0 {
		if err := maglev.ValidSize(v.RingSize); err != nil {
			return fmt.Errorf("vip %s: ring_size: %v: %w", v.Key, err, lb.ErrInvalid)
		}
	}
	return validVIPFlags(v.Key, v.Flags)
}

func validVIPFlags(k lb.VIPKey, f lb.VIPFlags) error {
	all := lb.FlagNoSrcPort | lb.FlagLRUBypass | lb.FlagDportOnly
	if f&^all != 0 || f&lb.FlagDportOnly != 0 && f&lb.FlagNoSrcPort != 0 {
		return fmt.Errorf("vip %s: flags %s: %w", k, f, lb.ErrInvalid)
	}
	return nil
}

func unicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a.Zone() == "" && !a.Is4In6()
}

func validRealFor(k lb.VIPKey, r lb.Real) error {
	if !unicast(r.Addr) || k.Addr.Is6() && r.Addr.Is4() || r.Weight > lb.MaxWeight || r.State > lb.Down {
		return fmt.Errorf("vip %s: real %+v: %w", k, r, lb.ErrInvalid)
	}
	return nil
}

func (d *recordingDataplane) AddVIP(v lb.VIP) error {
	if err := validVIP(v); err != nil {
		return err
	}
	if _, ok := d.vips[v.Key]; ok {
		return fmt.Errorf("vip %s: %w", v.Key, lb.ErrExists)
	}
	if len(d.vips) >= d.maxVIPs {
		return fmt.Errorf("vip %s: %d VIPs configured, the limit (max_vips): %w", v.Key, d.maxVIPs, lb.ErrFull)
	}
	d.vips[v.Key] = &lb.VIPInfo{VIP: v}
	return d.apply("AddVIP", v)
}

func (d *recordingDataplane) DelVIP(k lb.VIPKey) error {
	if _, ok := d.vips[k]; !ok {
		return fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
	}
	delete(d.vips, k)
	return d.apply("DelVIP", k)
}

func (d *recordingDataplane) SetVIPFlags(k lb.VIPKey, f lb.VIPFlags) error {
	if err := validVIPFlags(k, f); err != nil {
		return err
	}
	v, ok := d.vips[k]
	if !ok {
		return fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
	}
	v.Flags = f
	return d.apply("SetVIPFlags", f)
}

func (d *recordingDataplane) findReal(k lb.VIPKey, a netip.Addr) (*lb.VIPInfo, int, error) {
	v, ok := d.vips[k]
	if !ok {
		return nil, -1, fmt.Errorf("vip %s: %w", k, lb.ErrNotFound)
	}
	return v, slices.IndexFunc(v.Reals, func(r lb.Real) bool { return r.Addr == a }), nil
}

func (d *recordingDataplane) AddReal(k lb.VIPKey, r lb.Real) error {
	v, i, err := d.findReal(k, r.Addr)
	if err != nil {
		return err
	}
	if err := validRealFor(k, r); err != nil {
		return err
	}
	if i >= 0 {
		return fmt.Errorf("vip %s: real %s: %w", k, r.Addr, lb.ErrExists)
	}
	if d.nReals() >= d.maxReals {
		return fmt.Errorf("vip %s: real %s: %d reals configured, the limit of max_reals = %d (one id is reserved): %w", k, r.Addr, d.maxReals, d.maxReals+1, lb.ErrFull)
	}
	v.Reals = append(v.Reals, r)
	return d.apply("AddReal", r)
}

func (d *recordingDataplane) UpdateReal(k lb.VIPKey, r lb.Real) error {
	v, i, err := d.findReal(k, r.Addr)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("vip %s: real %s: %w", k, r.Addr, lb.ErrNotFound)
	}
	if err := validRealFor(k, r); err != nil {
		return err
	}
	v.Reals[i] = r
	return d.apply("UpdateReal", r)
}

func (d *recordingDataplane) DelReal(k lb.VIPKey, a netip.Addr) error {
	v, i, err := d.findReal(k, a)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("vip %s: real %s: %w", k, a, lb.ErrNotFound)
	}
	v.Reals = slices.Delete(v.Reals, i, i+1)
	return d.apply("DelReal", a)
}

func (d *recordingDataplane) VIPs() []lb.VIPInfo {
	var out []lb.VIPInfo
	for _, v := range d.vips {
		out = append(out, lb.VIPInfo{VIP: v.VIP, Reals: slices.Clone(v.Reals)})
	}
	return out
}

func (d *recordingDataplane) Stats() (lb.Stats, error)               { return lb.Stats{}, nil }
func (d *recordingDataplane) VIPStats(lb.VIPKey) (lb.Counter, error) { return lb.Counter{}, nil }
func (d *recordingDataplane) RealStats(lb.VIPKey, netip.Addr) (lb.Counter, error) {
	return lb.Counter{}, nil
}

func (d *recordingDataplane) SetGatewayMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("gateway mac %q: %w", mac, lb.ErrInvalid)
	}
	d.gateway = mac
	return d.apply("SetGatewayMAC", mac)
}

func (d *recordingDataplane) AddMark(m uint32, r netip.Addr) error {
	switch {
	case m == 0 || !unicast(r):
		return fmt.Errorf("mark %d: real %s: %w", m, r, lb.ErrInvalid)
	case d.marks[m].IsValid():
		return fmt.Errorf("mark %d: %w", m, lb.ErrExists)
	case len(d.marks) >= d.maxMarks:
		return fmt.Errorf("mark %d: %d marks configured, the limit: %w", m, d.maxMarks, lb.ErrFull)
	}
	d.marks[m] = r
	return d.apply("AddMark", r)
}

func (d *recordingDataplane) DelMark(m uint32) error {
	if !d.marks[m].IsValid() {
		return fmt.Errorf("mark %d: %w", m, lb.ErrNotFound)
	}
	delete(d.marks, m)
	return d.apply("DelMark", m)
}

func (d *recordingDataplane) Marks() []lb.Mark {
	var out []lb.Mark
	for m, r := range d.marks {
		out = append(out, lb.Mark{Mark: m, Real: r})
	}
	return out
}

// newRecordingDataplane holds two VIPs with a real each and one mark;
// room = false leaves no room for another VIP, real or mark.
func newRecordingDataplane(room bool) *recordingDataplane {
	d := &recordingDataplane{vips: map[lb.VIPKey]*lb.VIPInfo{}, marks: map[uint32]netip.Addr{}}
	for _, v := range []struct{ key, real string }{{"203.0.113.1:80/tcp", "192.0.2.11"}, {"[2001:db8:f00::1]:443/udp", "2001:db8::12"}} {
		k, _ := lb.ParseVIPKey(v.key)
		d.vips[k] = &lb.VIPInfo{VIP: lb.VIP{Key: k, RingSize: maglev.DefaultSize}, Reals: []lb.Real{{Addr: netip.MustParseAddr(v.real), Weight: 1}}}
	}
	d.marks[1000] = netip.MustParseAddr("192.0.2.11")
	d.maxVIPs, d.maxReals, d.maxMarks = 2, 2, 1
	if room {
		d.maxVIPs, d.maxReals, d.maxMarks = 3, 3, 2
	}
	return d
}

// apiOps are the mutating calls fuzzed; the fuzzer picks one by number.
var apiOps = []string{"AddVIP", "DeleteVIP", "SetVIP", "AddReal", "DeleteReal", "SetReal", "AddHealthcheckMark", "DeleteHealthcheckMark", "SetGateway"}

// Bits of the fuzzed opts byte.
const (
	optRoom      = 1 << iota // the tables have room for one more entry
	optNoMarks               // healthcheck forwarding is off
	optSetWeight             // SetReal carries a weight
	optSetState              // SetReal carries a state
	optNilKey                // the request has no VIP key at all
)

func FuzzAPIRequests(f *testing.F) {
	type seed struct {
		op           uint8
		addr         string
		port         uint32
		proto, flags string
		ring         uint32
		real         string
		weight       uint32
		state        string
		mark         uint32
		mac          string
		opts         uint8
	}
	for _, s := range []seed{
		{0, "203.0.113.2", 80, "tcp", "", 0, "", 0, "", 0, "", optRoom},
		{0, "203.0.113.2", 80, "TCP", "no_src_port;lru_bypass", 65537, "", 0, "", 0, "", optRoom},
		{0, "203.0.113.2", 0, "udp", "dport_only,no_src_port", 7, "", 0, "", 0, "", optRoom},
		{0, "203.0.113.2", 80, "tcp", "", 65536, "", 0, "", 0, "", optRoom},
		{0, "203.0.113.2", 70000, "tcp", "", 0, "", 0, "", 0, "", optRoom},
		{0, "::ffff:203.0.113.2", 80, "sctp", "", 0, "", 0, "", 0, "", optRoom},
		{0, "203.0.113.1", 80, "tcp", "", 0, "", 0, "", 0, "", optRoom},
		{0, "203.0.113.3", 80, "tcp", "", 0, "", 0, "", 0, "", 0},
		{1, "203.0.113.1", 80, "tcp", "", 0, "", 0, "", 0, "", 0},
		{2, "203.0.113.1", 80, "tcp", "lru_bypass", 0, "", 0, "", 0, "", 0},
		{2, "203.0.113.1", 80, "tcp", "", 3, "", 0, "", 0, "", 0},
		{3, "203.0.113.1", 80, "tcp", "", 0, "192.0.2.12", 10, "draining", 0, "", optRoom},
		{3, "2001:db8:f00::1", 443, "udp", "", 0, "192.0.2.12", 1, "", 0, "", optRoom},
		{3, "203.0.113.1", 80, "tcp", "", 0, "fe80::1%eth0", 70000, "sideways", 0, "", optRoom},
		{3, "203.0.113.1", 80, "tcp", "", 0, "192.0.2.13", 1, "", 0, "", 0},
		{4, "203.0.113.1", 80, "tcp", "", 0, "192.0.2.11", 0, "", 0, "", 0},
		{5, "203.0.113.1", 80, "tcp", "", 0, "192.0.2.11", 5, "down", 0, "", optSetWeight | optSetState},
		{5, "203.0.113.1", 80, "tcp", "", 0, "192.0.2.99", 5, "", 0, "", optSetWeight},
		{5, "203.0.113.1", 80, "tcp", "", 0, "192.0.2.11", 65536, "up", 0, "", optSetWeight},
		{6, "", 0, "", "", 0, "192.0.2.12", 0, "", 1001, "", optRoom},
		{6, "", 0, "", "", 0, "2001:db8::13", 0, "", 0, "", optRoom},
		{6, "", 0, "", "", 0, "192.0.2.12", 0, "", 1001, "", optNoMarks},
		{7, "", 0, "", "", 0, "", 0, "", 1000, "", 0},
		{8, "", 0, "", "", 0, "", 0, "", 0, "52:54:00:12:35:02", 0},
		{8, "", 0, "", "", 0, "", 0, "", 0, "01:00:5e:00:00:01", 0},
		{8, "", 0, "", "", 0, "", 0, "", 0, "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", 0},
		{1, "", 0, "", "", 0, "", 0, "", 0, "", optNilKey},
	} {
		f.Add(s.op, s.addr, s.port, s.proto, s.flags, s.ring, s.real, s.weight, s.state, s.mark, s.mac, s.opts)
	}
	f.Fuzz(func(t *testing.T, op uint8, addr string, port uint32, proto, flags string, ring uint32,
		real string, weight uint32, state string, mark uint32, mac string, opts uint8) {
		dp := newRecordingDataplane(opts&optRoom != 0)
		srv := &apiServer{dp: dp, marks: dp}
		if opts&optNoMarks != 0 {
			srv.marks = nil
		}
		var gatewaySet net.HardwareAddr
		srv.onGatewaySet = func(m net.HardwareAddr) { gatewaySet = m }

		key := &api.VIPKey{Address: addr, Port: port, Protocol: proto}
		if opts&optNilKey != 0 {
			key = nil
		}
		var flagList []string
		if flags != "" {
			flagList = strings.Split(flags, ";")
		}
		name := apiOps[int(op)%len(apiOps)]
		ctx := context.Background()
		var err error
		switch name {
		case "AddVIP":
			_, err = srv.AddVIP(ctx, &api.AddVIPRequest{Vip: &api.VIP{Key: key, Flags: flagList, RingSize: ring}})
		case "DeleteVIP":
			_, err = srv.DeleteVIP(ctx, &api.DeleteVIPRequest{Key: key})
		case "SetVIP":
			_, err = srv.SetVIP(ctx, &api.SetVIPRequest{Vip: &api.VIP{Key: key, Flags: flagList, RingSize: ring}})
		case "AddReal":
			_, err = srv.AddReal(ctx, &api.AddRealRequest{Vip: key, Real: &api.Real{Address: real, Weight: weight, State: state}})
		case "DeleteReal":
			_, err = srv.DeleteReal(ctx, &api.DeleteRealRequest{Vip: key, Address: real})
		case "SetReal":
			req := &api.SetRealRequest{Vip: key, Address: real}
			if opts&optSetWeight != 0 {
				req.Weight = &weight
			}
			if opts&optSetState != 0 {
				req.State = &state
			}
			_, err = srv.SetReal(ctx, req)
		case "AddHealthcheckMark":
			_, err = srv.AddHealthcheckMark(ctx, &api.AddHealthcheckMarkRequest{Mark: &api.HealthcheckMark{Mark: mark, Real: real}})
		case "DeleteHealthcheckMark":
			_, err = srv.DeleteHealthcheckMark(ctx, &api.DeleteHealthcheckMarkRequest{Mark: mark})
		case "SetGateway":
			_, err = srv.SetGateway(ctx, &api.SetGatewayRequest{Mac: mac})
		}

		if err != nil {
			st, ok := status.FromError(err)
			switch {
			case !ok:
				t.Fatalf("%s: error %v is not a gRPC status", name, err)
			case !slices.Contains([]codes.Code{codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.ResourceExhausted, codes.FailedPrecondition}, st.Code()):
				t.Fatalf("%s: code %s (%v), want a validation code", name, st.Code(), err)
			case st.Message() == "":
				t.Fatalf("%s: %s without a message", name, st.Code())
			case len(dp.applied) != 0:
				t.Fatalf("%s failed (%v) but changed the data plane: %v", name, err, dp.applied)
			case gatewaySet != nil:
				t.Fatalf("%s failed (%v) but told the daemon of a gateway", name, err)
			}
			return
		}
		if len(dp.applied) != 1 {
			t.Fatalf("%s succeeded with %d data-plane changes %v, want 1", name, len(dp.applied), dp.applied)
		}
		checkApplied(t, name, dp, key, real, mac, gatewaySet)
	})
}

// checkApplied: a call that succeeded changed what it named, to the value
// it carried.
func checkApplied(t *testing.T, name string, dp *recordingDataplane, key *api.VIPKey, real, mac string, gatewaySet net.HardwareAddr) {
	t.Helper()
	sameKey := func(k lb.VIPKey) {
		t.Helper()
		a, err := netip.ParseAddr(key.GetAddress())
		if err != nil || a != k.Addr || uint32(k.Port) != key.GetPort() || !strings.EqualFold(k.Proto.String(), key.GetProtocol()) {
			t.Fatalf("%s: request key %v reached the data plane as %s", name, key, k)
		}
	}
	sameReal := func(a netip.Addr) {
		t.Helper()
		if want, err := netip.ParseAddr(real); err != nil || want != a {
			t.Fatalf("%s: real %q reached the data plane as %s", name, real, a)
		}
	}
	switch v := dp.last.(type) {
	case lb.VIP:
		sameKey(v.Key)
	case lb.VIPKey:
		sameKey(v)
	case lb.Real:
		sameReal(v.Addr)
	case netip.Addr:
		sameReal(v)
	case net.HardwareAddr:
		want, err := net.ParseMAC(mac)
		if err != nil || !slices.Equal(want, v) || len(v) != 6 || v[0]&1 != 0 || !slices.Equal(gatewaySet, v) {
			t.Fatalf("%s: MAC %q reached the data plane as %s (daemon told %s)", name, mac, v, gatewaySet)
		}
	}
}
