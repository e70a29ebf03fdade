package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"vipcast/api"
	"vipcast/health"
	"vipcast/internal/testutil"
	"vipcast/lb"
)

// The data plane's limits through the management API: the call one past a
// limit gets ResourceExhausted naming the limit, the desired state and the
// data plane stay as they were, and freed room is usable again.
func TestAPILimits(t *testing.T) {
	testutil.RequirePrivileged(t)
	const maxVIPs, maxReals, maxMarks = 4, 5, 3 // 4 usable real ids: id 0 is reserved
	b, err := lb.New(lb.Config{MaxVIPs: maxVIPs, MaxReals: maxReals, ConnTableSize: 4096, FallbackTableSize: 1024,
		GatewayMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hc, err := lb.NewHealthcheck(lb.HealthcheckConfig{MaxMarks: maxMarks,
		SourceV4: netip.MustParseAddr("192.0.2.2"), SourceV6: netip.MustParseAddr("2001:db8:0:1::2")})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	ctrl := &controller{log: slog.New(slog.DiscardHandler), dp: b, vips: map[lb.VIPKey]*wantVIP{}, health: map[realKey]health.State{}}
	srv := grpc.NewServer()
	api.RegisterVipcastServer(srv, &apiServer{dp: ctrl, marks: hc})
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := api.NewVipcastClient(conn)

	key := func(i int) *api.VIPKey {
		return &api.VIPKey{Address: fmt.Sprintf("203.0.113.%d", i), Port: 80, Protocol: "tcp"}
	}
	addVIP := func(i int) error {
		_, err := c.AddVIP(ctx(t), &api.AddVIPRequest{Vip: &api.VIP{Key: key(i), RingSize: 1021}})
		return err
	}
	addReal := func(i int, real string) error {
		_, err := c.AddReal(ctx(t), &api.AddRealRequest{Vip: key(i), Real: &api.Real{Address: real, Weight: 1}})
		return err
	}
	addMark := func(mark uint32, real string) error {
		_, err := c.AddHealthcheckMark(ctx(t), &api.AddHealthcheckMarkRequest{Mark: &api.HealthcheckMark{Mark: mark, Real: real}})
		return err
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// state is everything a refused call must leave alone: the API's view,
	// the data plane's and the mark table.
	type state struct {
		API   string
		Plane []lb.VIPInfo
		Marks []lb.Mark
	}
	snapshot := func() state {
		t.Helper()
		list, err := c.ListVIPs(ctx(t), &api.ListVIPsRequest{})
		must("ListVIPs", err)
		return state{API: list.String(), Plane: b.VIPs(), Marks: hc.Marks()}
	}
	exhausted := func(what string, err error, limit string) {
		t.Helper()
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), limit) {
			t.Fatalf("%s: %v; want ResourceExhausted naming the limit (%q)", what, err, limit)
		}
		t.Logf("%s: %v", what, err)
	}

	// VIPs.
	for i := 1; i <= maxVIPs; i++ {
		must("AddVIP", addVIP(i))
	}
	before := snapshot()
	exhausted("VIP past max_vips", addVIP(maxVIPs+1), "4 VIPs configured, the limit (max_vips)")
	if after := snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused AddVIP changed the state:\n%+v\n%+v", before, after)
	}

	// Reals: 4 ids in all, over two VIPs, the same address on both.
	must("AddReal", addReal(1, "192.0.2.11"))
	must("AddReal", addReal(1, "192.0.2.12"))
	must("AddReal", addReal(1, "2001:db8::13"))
	must("AddReal", addReal(2, "192.0.2.11"))
	before = snapshot()
	exhausted("real past max_reals", addReal(2, "192.0.2.12"), "4 reals configured, the limit of max_reals = 5 (one id is reserved)")
	exhausted("real past max_reals", addReal(3, "192.0.2.14"), "4 reals configured, the limit of max_reals = 5 (one id is reserved)")
	if after := snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused AddReal changed the state:\n%+v\n%+v", before, after)
	}
	// The controller's desired state is what the data plane holds.
	if got, want := len(ctrl.VIPs()), len(b.VIPs()); got != want {
		t.Fatalf("controller holds %d VIPs, data plane %d", got, want)
	}
	for i, v := range ctrl.VIPs() {
		if p := b.VIPs()[i]; p.Key != v.Key || len(p.Reals) != len(v.Reals) {
			t.Fatalf("controller %v, data plane %v", v, p)
		}
	}

	// Marks.
	must("AddHealthcheckMark", addMark(1000, "192.0.2.11"))
	must("AddHealthcheckMark", addMark(1001, "192.0.2.12"))
	must("AddHealthcheckMark", addMark(1002, "2001:db8::13"))
	before = snapshot()
	exhausted("mark past the table size", addMark(1003, "192.0.2.14"), "3 marks configured, the limit: table full (the table holds hc_mark_range's marks plus 1024 set by hand)")
	if after := snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused AddHealthcheckMark changed the state:\n%+v\n%+v", before, after)
	}

	// Room freed is usable at once.
	_, err = c.DeleteVIP(ctx(t), &api.DeleteVIPRequest{Key: key(4)})
	must("DeleteVIP", err)
	must("AddVIP after a delete", addVIP(5))
	_, err = c.DeleteReal(ctx(t), &api.DeleteRealRequest{Vip: key(1), Address: "192.0.2.12"})
	must("DeleteReal", err)
	must("AddReal after a delete", addReal(5, "192.0.2.15"))
	_, err = c.DeleteHealthcheckMark(ctx(t), &api.DeleteHealthcheckMarkRequest{Mark: 1001})
	must("DeleteHealthcheckMark", err)
	must("AddHealthcheckMark after a delete", addMark(1003, "192.0.2.15"))
	// And full again.
	exhausted("VIP past max_vips", addVIP(6), "the limit (max_vips)")
	exhausted("real past max_reals", addReal(5, "192.0.2.16"), "the limit of max_reals = 5")
	exhausted("mark past the table size", addMark(1004, "192.0.2.16"), "the limit")
	if got := b.VIPs(); len(got) != maxVIPs {
		t.Fatalf("data plane holds %d VIPs, want %d", len(got), maxVIPs)
	}
}
