package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"vipcast/api"
	"vipcast/cli"
	"vipcast/health"
	"vipcast/internal/testutil"
	"vipcast/lb"
)

// The seed walk-through, with the real CLI against the real API server
// and the real data plane (not attached: the maps are what is checked).
func TestCLIAgainstRealServer(t *testing.T) {
	testutil.RequirePrivileged(t)
	b, err := lb.New(lb.Config{ConnTableSize: 4096, FallbackTableSize: 1024, GatewayMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hc, err := lb.NewHealthcheck(lb.HealthcheckConfig{SourceV4: netip.MustParseAddr("192.0.2.2"), SourceV6: netip.MustParseAddr("2001:db8:0:1::2")})
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

	vipcast := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		root := cli.NewRootCommand(&out, &errb)
		root.SetArgs(append([]string{"--socket", sock}, args...))
		code := cli.Execute(context.Background(), root)
		return out.String() + errb.String(), code
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"vip", "add", "203.0.113.1:80/tcp"}, 0, ""},
		{[]string{"real", "add", "203.0.113.1:80/tcp", "192.0.2.11", "--weight", "10"}, 0, ""},
		{[]string{"real", "add", "203.0.113.1:80/tcp", "192.0.2.12"}, 0, ""},
		{[]string{"vip", "list", "-l"}, 0, "192.0.2.11"},
		{[]string{"hc", "add", "192.0.2.11", "--mark", "1000"}, 0, ""},
		{[]string{"hc", "add", "192.0.2.12", "--mark", "1001"}, 0, ""},
		{[]string{"hc", "add", "2001:db8::13", "--mark", "1002"}, 0, ""},
		{[]string{"hc", "list"}, 0, "1002"},
		{[]string{"stats"}, 0, "203.0.113.1:80/tcp"},
		{[]string{"vip", "add", "203.0.113.1:80/tcp"}, 1, "vip 203.0.113.1:80/tcp: already exists"},
		{[]string{"real", "add", "[2001:db8:f00::1]:80/tcp", "192.0.2.11"}, 1, "not found"},
		{[]string{"vip", "add", "[2001:db8:f00::1]:80/tcp"}, 0, ""},
		{[]string{"real", "add", "[2001:db8:f00::1]:80/tcp", "192.0.2.11"}, 1, "an IPv6 VIP needs IPv6 reals"},
		{[]string{"real", "drain", "203.0.113.1:80/tcp", "192.0.2.12"}, 0, ""},
		{[]string{"-j", "real", "list", "203.0.113.1:80/tcp"}, 0, `"state": "draining"`},
	}
	for _, s := range steps {
		got, code := vipcast(s.args...)
		if code != s.code || !strings.Contains(got, s.want) {
			t.Fatalf("vipcast %s: exit %d, output:\n%s\nwant exit %d containing %q", strings.Join(s.args, " "), code, got, s.code, s.want)
		}
	}
	// The data plane holds what the CLI asked for.
	infos := b.VIPs()
	if len(infos) != 2 || len(infos[0].Reals) != 2 || infos[0].Reals[0].Weight != 10 || infos[0].Reals[1].State != lb.Draining {
		t.Fatalf("data plane: %+v", infos)
	}
	if len(hc.Marks()) != 3 {
		t.Fatalf("marks in the data plane: %v", hc.Marks())
	}
}
