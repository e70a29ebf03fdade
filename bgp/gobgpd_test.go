package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Interop with Debian's gobgpd as the upstream router: our speaker (helper
// process in the LB namespace) against a stock gobgpd in the router
// namespace, one IPv4 session with TCP MD5 and one plain IPv6 session.
// gobgpd's API listens on 127.0.0.1:50052 inside the router namespace, so
// it clashes with nothing on the host or in the LB namespace.

const gobgpdAPIPort = "50052"

// startGoBGPd writes conf.toml and runs gobgpd in the router namespace.
func (l *lab) startGoBGPd(t *testing.T, password string) {
	t.Helper()
	for _, bin := range []string{"gobgpd", "gobgp"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (Debian package gobgpd)", bin)
			}
			t.Skipf("%s not installed (Debian package gobgpd)", bin)
		}
	}
	pw := ""
	if password != "" {
		pw = fmt.Sprintf("auth-password = %q", password)
	}
	conf := fmt.Sprintf(`
[global.config]
  as = 65001
  router-id = %[1]q

[[neighbors]]
  [neighbors.config]
    neighbor-address = %[3]q
    peer-as = 65000
    %[5]s
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 1
  [neighbors.transport.config]
    local-address = %[1]q
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"

[[neighbors]]
  [neighbors.config]
    neighbor-address = %[4]q
    peer-as = 65000
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 1
  [neighbors.transport.config]
    local-address = %[2]q
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`, rtrV4, rtrV6, lbV4, lbV6, pw)
	path := filepath.Join(l.dir, "gobgpd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.rtr.Cmd(ctx, "gobgpd", "-f", path, "-t", "toml", "--api-hosts", "127.0.0.1:"+gobgpdAPIPort, "--log-plain", "--pprof-disable")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start gobgpd in %s: %v", l.rtr.Name, err)
	}
	t.Cleanup(func() {
		cancel() // SIGKILL via exec.CommandContext
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gobgpd log:\n%s", logs.String())
		}
	})
	waitUntil(t, 10*time.Second, "gobgpd API up", func() bool {
		_, err := l.gobgp(t, "global")
		return err == nil
	})
}

// gobgp runs the gobgp CLI (bounded) against the router's gobgpd.
func (l *lab) gobgp(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := l.rtr.Cmd(ctx, "gobgp", append([]string{"-p", gobgpdAPIPort}, args...)...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return out, fmt.Errorf("gobgp %s: %v %s", strings.Join(args, " "), err, stderr)
	}
	return out, nil
}

// gobgpdEstablished reports whether gobgpd's session to addr is
// established, from `gobgp neighbor <addr> -j`.
func (l *lab) gobgpdEstablished(t *testing.T, addr string) bool {
	t.Helper()
	out, err := l.gobgp(t, "neighbor", addr, "-j")
	if err != nil {
		return false
	}
	var p struct {
		State struct {
			SessionState any `json:"session_state"`
		} `json:"state"`
	}
	if json.Unmarshal(out, &p) != nil {
		return false
	}
	// The CLI renders the enum as its number (6) or its name.
	s := strings.ToLower(fmt.Sprint(p.State.SessionState))
	return s == "6" || s == "established" || s == "session_state_established"
}

// gobgpdRIB returns the prefixes of gobgpd's global RIB for one family
// ("ipv4" or "ipv6"), from `gobgp global rib -a <family> -j`.
func (l *lab) gobgpdRIB(t *testing.T, family string) map[string]json.RawMessage {
	t.Helper()
	out, err := l.gobgp(t, "global", "rib", "-a", family, "-j")
	if err != nil {
		t.Fatal(err)
	}
	rib := map[string]json.RawMessage{}
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &rib); err != nil {
			t.Fatalf("gobgp global rib -a %s -j: %v\n%s", family, err, out)
		}
	}
	return rib
}

func TestGoBGPdInterop(t *testing.T) {
	l := newLab(t)
	const password = "gobgp-md5-pw"
	l.startGoBGPd(t, password)
	h := startHelper(t, l.lb)
	cfg := labConfig()
	cfg.Peers[0].Password = password // the IPv4 session carries TCP MD5
	h.must(helperReq{Op: "start", Config: &cfg})

	start := time.Now()
	waitUntil(t, 20*time.Second, "gobgpd sessions established (v4 with MD5, v6)", func() bool {
		return l.gobgpdEstablished(t, lbV4) && l.gobgpdEstablished(t, lbV6)
	})
	waitUntil(t, 5*time.Second, "speaker sees both sessions", func() bool {
		return h.peer(rtrV4).State == "established" && h.peer(rtrV6).State == "established"
	})
	t.Logf("both sessions to gobgpd established after %s", time.Since(start).Round(time.Millisecond))

	for _, c := range []struct {
		vip    netip.Prefix
		family string
	}{{vip4, "ipv4"}, {vip6, "ipv6"}} {
		has := func() bool { _, ok := l.gobgpdRIB(t, c.family)[c.vip.String()]; return ok }
		start := time.Now()
		h.must(helperReq{Op: "announce", Prefix: c.vip})
		waitUntil(t, 5*time.Second, c.vip.String()+" in gobgpd's RIB", has)
		in := time.Since(start)
		rib := l.gobgpdRIB(t, c.family)
		if !strings.Contains(string(rib[c.vip.String()]), "65000") {
			t.Errorf("gobgpd's path for %s lacks our AS 65000: %s", c.vip, rib[c.vip.String()])
		}
		start = time.Now()
		h.must(helperReq{Op: "withdraw", Prefix: c.vip})
		waitUntil(t, 5*time.Second, c.vip.String()+" gone from gobgpd's RIB", func() bool { return !has() })
		t.Logf("%s: in gobgpd's RIB %s after Announce, gone %s after Withdraw (gobgp CLI polling, 20 ms steps)",
			c.vip, in.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}

	// The sessions stayed up through it all.
	if !l.gobgpdEstablished(t, lbV4) || !l.gobgpdEstablished(t, lbV6) {
		t.Fatalf("a gobgpd session dropped during announce/withdraw")
	}

	// MD5 is really in force: gobgpd holds the password, and with a
	// wrong one on our side the IPv4 session cannot come back.
	if out, err := l.gobgp(t, "neighbor", lbV4, "-j"); err != nil || !strings.Contains(string(out), password) {
		t.Errorf("gobgpd's neighbor %s does not carry the MD5 password (%v): %s", lbV4, err, out)
	}
	bad := labConfig()
	bad.Peers[0].Password = "wrong-" + password
	h.must(helperReq{Op: "reconfigure", Config: &bad})
	waitUntil(t, 15*time.Second, "IPv4 session down after the password changed", func() bool {
		return !l.gobgpdEstablished(t, lbV4) && h.peer(rtrV4).State != "established"
	})
	deadline := time.Now().Add(4 * time.Second) // > 3 connect retries each side
	for time.Now().Before(deadline) {
		if l.gobgpdEstablished(t, lbV4) {
			t.Fatalf("IPv4 session to gobgpd established with a mismatched MD5 password")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !l.gobgpdEstablished(t, lbV6) {
		t.Errorf("the IPv6 session (no MD5) dropped when the IPv4 password changed")
	}
}
