package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"vipcast/api"
	"vipcast/cli"
)

// LB is one load balancer: a namespace whose eth0 runs vipcastd.
type LB struct {
	Index  int
	Name   string // lb1, lb2
	NS     *NS
	V4, V6 netip.Addr
	Iface  string

	ConfigPath string // its vipcast.toml
	Socket     string // its API socket
	PinDir     string // vipcastd --pin-dir (the data plane is under PinDir/eth0)

	lab  *Lab
	proc *Process
	conn *grpc.ClientConn
	api  api.VipcastClient
}

// WriteConfig writes the LB's configuration file; Start or Reload applies it.
func (x *LB) WriteConfig(c DaemonConfig) error {
	return os.WriteFile(x.ConfigPath, []byte(c.render(x)), 0o644)
}

// LogPath is vipcastd's log file.
func (x *LB) LogPath() string { return filepath.Join(x.lab.Dir, x.Name+".log") }

// Start runs vipcastd and waits (bounded) until its API answers.
func (x *LB) Start() error {
	if x.proc != nil && x.proc.Running() {
		return fmt.Errorf("%s: vipcastd already runs (pid %d)", x.Name, x.proc.Pid())
	}
	var err error
	x.proc, err = startProcess(x.NS, "vipcastd on "+x.Name, x.LogPath(), x.lab.opts.Detached,
		filepath.Join(x.lab.Bin, DaemonBin), "--config", x.ConfigPath, "--pin-dir", x.PinDir, "--log-format", "json")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The socket file of an earlier run may still be there; a
		// connection accepted is the new process's.
		var err error
		if c, derr := net.Dial("unix", x.Socket); derr == nil {
			c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = x.API().GetVersion(ctx, &api.GetVersionRequest{})
			cancel()
			if err == nil {
				return nil
			}
		} else {
			err = derr
		}
		if !x.proc.Running() {
			return fmt.Errorf("vipcastd on %s exited (%v):\n%s", x.Name, x.proc.Wait(0), x.proc.Tail(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vipcastd on %s: API not answering after 20 s: %v\n%s", x.Name, err, x.proc.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Running reports whether this lab started vipcastd on the LB and it has
// not exited.
func (x *LB) Running() bool { return x.proc != nil && x.proc.Running() }

// Process is the running vipcastd (nil before Start).
func (x *LB) Process() *Process { return x.proc }

// Stop sends SIGTERM and waits for a clean exit (bounded to 15 s).
func (x *LB) Stop() error {
	if x.proc == nil {
		return nil
	}
	if err := x.proc.Stop(15 * time.Second); err != nil {
		return fmt.Errorf("vipcastd on %s: %w\n%s", x.Name, err, x.proc.Tail(20))
	}
	return nil
}

// Cleanup runs `vipcastd --cleanup`: the data plane is detached and its
// pins removed. vipcastd must not be running.
func (x *LB) Cleanup() error {
	_, err := x.NS.Exec(filepath.Join(x.lab.Bin, DaemonBin), "--config", x.ConfigPath, "--pin-dir", x.PinDir, "--cleanup")
	return err
}

// API is a client of the LB's vipcast API. It reconnects quickly after
// vipcastd restarts (gRPC's default backoff would wait a second).
func (x *LB) API() api.VipcastClient {
	if x.api == nil {
		conn, err := grpc.NewClient("unix://"+x.Socket,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond},
				MinConnectTimeout: time.Second,
			}))
		if err != nil {
			panic(err) // only for a malformed target, which this is not
		}
		x.conn, x.api = conn, api.NewVipcastClient(conn)
	}
	return x.api
}

// CLI runs one vipcast command in process against the LB ("vip", "list",
// "-l") and returns stdout, stderr and the exit status.
func (x *LB) CLI(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	root := cli.NewRootCommand(&out, &errb)
	root.SetArgs(append([]string{"--socket", x.Socket}, args...))
	code = cli.Execute(ctx, root)
	return out.String(), errb.String(), code
}

// Reload asks vipcastd to re-read its file and returns the changes.
func (x *LB) Reload(ctx context.Context) ([]string, error) {
	resp, err := x.API().Reload(ctx, &api.ReloadRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Changes, nil
}

// Apply writes c and reloads.
func (x *LB) Apply(ctx context.Context, c DaemonConfig) ([]string, error) {
	if err := x.WriteConfig(c); err != nil {
		return nil, err
	}
	return x.Reload(ctx)
}

// RealHealth returns the health vipcastd reports for one real of one VIP
// ("up", "down", "unknown"), and its operator state.
func (x *LB) RealHealth(ctx context.Context, vip VIPCfg, real netip.Addr) (health, state string, err error) {
	resp, err := x.API().ListVIPs(ctx, &api.ListVIPsRequest{})
	if err != nil {
		return "", "", err
	}
	for _, v := range resp.Vips {
		k := v.GetVip().GetKey()
		if k.GetAddress() != vip.Addr.String() || k.GetPort() != uint32(vip.Port) || k.GetProtocol() != vip.Proto {
			continue
		}
		for _, r := range v.GetReals() {
			if r.GetAddress() == real.String() {
				return r.GetHealth(), r.GetState(), nil
			}
		}
	}
	return "", "", fmt.Errorf("%s: no real %s in vip %s", x.Name, real, vip.Key())
}

// WaitHealthy waits until every real of every VIP given is healthy
// (health "up" or unchecked) and BIRD holds a route for each VIP address.
func (x *LB) WaitRouted(ctx context.Context, vips []VIPCfg, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		last = x.notReady(ctx, vips)
		if last == "" {
			return nil
		}
		if !x.Running() && x.proc != nil {
			return fmt.Errorf("vipcastd on %s exited (%v):\n%s", x.Name, x.proc.Wait(0), x.proc.Tail(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s\n%s", x.Name, timeout, last, tailFile(x.LogPath(), 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// notReady says what is missing, or "" when everything is up and routed.
func (x *LB) notReady(ctx context.Context, vips []VIPCfg) string {
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := x.API().ListVIPs(c, &api.ListVIPsRequest{})
	if err != nil {
		return err.Error()
	}
	have := map[string]*api.VIPInfo{}
	for _, v := range resp.Vips {
		k := v.GetVip().GetKey()
		have[netip.AddrPortFrom(netip.MustParseAddr(k.GetAddress()), uint16(k.GetPort())).String()+"/"+k.GetProtocol()] = v
	}
	var missing []string
	for _, want := range vips {
		v := have[want.Key()]
		if v == nil {
			missing = append(missing, want.Key()+" not configured")
			continue
		}
		for _, r := range v.GetReals() {
			if r.GetState() == "up" && r.GetHealth() != "up" && r.GetHealth() != "" {
				missing = append(missing, fmt.Sprintf("%s real %s health %q", want.Key(), r.GetAddress(), r.GetHealth()))
			}
		}
		prefix := netip.PrefixFrom(want.Addr, want.Addr.BitLen()).String()
		if ok, err := x.lab.Bird.HasRoute(prefix); err != nil || !ok {
			missing = append(missing, prefix+" not in BIRD")
		}
	}
	return strings.Join(missing, "; ")
}

// IngressDrops counts frames the fabric could not hand to the LB's veth
// (its receive ring was full): the fabric end's TX drops.
func (x *LB) IngressDrops() (uint64, error) {
	var n uint64
	err := x.lab.Fabric.Do(func() error {
		l, err := netlink.LinkByName(x.Name)
		if err != nil {
			return err
		}
		if s := l.Attrs().Statistics; s != nil {
			n = s.TxDropped
		}
		return nil
	})
	return n, err
}

// Event finds the first line vipcastd (this run) logged after since with
// the given msg whose fields include every key=value of match, and
// returns its time: when vipcastd decided, not when someone noticed.
func (x *LB) Event(since time.Time, msg string, match map[string]string) (time.Time, bool) {
	if x.proc == nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(x.proc.Output(), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, msg) {
			continue
		}
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil || ev["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range match {
			if fmt.Sprint(ev[k]) != v {
				ok = false
			}
		}
		ts, _ := ev["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if ok && err == nil && at.After(since) {
			return at, true
		}
	}
	return time.Time{}, false
}
