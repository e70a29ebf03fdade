package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vipcast/internal/testutil"
	"vipcast/lb"
)

func TestRealSetup(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := lb.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	id := testutil.RunID()
	real, peer := testutil.NewNS(t, id, "real"), testutil.NewNS(t, id, "peer")
	testutil.Veth(t, real, "eth0", peer, "eth0")
	pins := filepath.Join(lb.BPFFS, "vipcast-test-"+id)
	t.Cleanup(func() { _ = lb.RemovePins(pins) })

	vipcast := func(args ...string) (string, int) {
		var out bytes.Buffer
		var code int
		if err := real.Do(func() error {
			root := NewRootCommand(&out, &out)
			root.SetArgs(args)
			code = Execute(context.Background(), root)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	out, code := vipcast("real-setup", "--interface", "eth0", "--vip", "203.0.113.1", "--vip", "2001:db8:f00::1", "--pin-dir", pins)
	if code != 0 {
		t.Fatalf("real-setup: exit %d\n%s", code, out)
	}
	if lo := string(real.MustExec(t, "ip", "addr", "show", "lo")); !strings.Contains(lo, "203.0.113.1/32") || !strings.Contains(lo, "2001:db8:f00::1/128") {
		t.Fatalf("VIPs not on lo:\n%s", lo)
	}
	if link := string(real.MustExec(t, "ip", "link", "show", "eth0")); !strings.Contains(link, "xdp") {
		t.Fatalf("decap program not attached:\n%s", link)
	}
	if rp := strings.TrimSpace(string(real.MustExec(t, "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"))); rp != "0" {
		t.Fatalf("rp_filter of eth0 = %s", rp)
	}
	// Running it again (a changed VIP list) updates in place.
	if out, code := vipcast("real-setup", "--interface", "eth0", "--vip", "203.0.113.2", "--pin-dir", pins); code != 0 {
		t.Fatalf("second real-setup: exit %d\n%s", code, out)
	}
	if out, code := vipcast("real-setup", "--interface", "eth0", "--vip", "nonsense", "--pin-dir", pins); code != 1 || !strings.Contains(out, `invalid --vip "nonsense"`) {
		t.Fatalf("bad --vip: exit %d\n%s", code, out)
	}
	if out, code := vipcast("real-setup", "--remove", "--interface", "eth0", "--vip", "203.0.113.1", "--vip", "203.0.113.2", "--pin-dir", pins); code != 0 {
		t.Fatalf("remove: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Fatalf("pins left behind: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(string(real.MustExec(t, "ip", "link", "show", "eth0")), "xdp") {
		if time.Now().After(deadline) {
			t.Fatal("decap program still attached 5 s after --remove")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lo := string(real.MustExec(t, "ip", "addr", "show", "lo")); strings.Contains(lo, "203.0.113.1/32") {
		t.Fatalf("VIP still on lo after --remove:\n%s", lo)
	}
}
