package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"time"
)

// Real is one real server: a namespace with the VIPs on lo, vipcast's
// decap program on eth0, and the lab's HTTP and UDP echo servers.
type Real struct {
	Index  int
	Name   string // real1..real3
	NS     *NS
	V4, V6 netip.Addr

	lab    *Lab
	server *Process
}

// PinDir holds the real's pinned decap link.
func (r *Real) PinDir() string { return filepath.Join(r.lab.PinRoot, r.Name) }

// Setup prepares the real for every lab VIP with `vipcast real-setup`:
// vipcast's decap program on eth0 (pinned under PinDir), the VIPs on lo,
// rp_filter off.
func (r *Real) Setup() error {
	args := []string{"real-setup", "--interface", "eth0", "--xdp-mode", "native", "--pin-dir", r.PinDir()}
	for _, v := range AllVIPs {
		args = append(args, "--vip", v.String())
	}
	if _, err := r.NS.Exec(filepath.Join(r.lab.Bin, CLIBin), args...); err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	return nil
}

// Teardown undoes Setup (`vipcast real-setup --remove`).
func (r *Real) Teardown() error {
	args := []string{"real-setup", "--remove", "--interface", "eth0", "--pin-dir", r.PinDir()}
	for _, v := range AllVIPs {
		args = append(args, "--vip", v.String())
	}
	_, err := r.NS.Exec(filepath.Join(r.lab.Bin, CLIBin), args...)
	return err
}

// StartServer starts the real's servers (`vipcast-lab serve`) and waits
// until they answer on the VIPs locally.
func (r *Real) StartServer() error {
	if r.server != nil && r.server.Running() {
		return nil
	}
	if r.server == nil && len(r.NS.pids()) > 0 && r.Ping(context.Background()) == nil {
		return nil // started by another process (a lab from Open)
	}
	args := []string{r.lab.opts.ServeBin, "serve", "--name", r.Name,
		"--http-port", fmt.Sprint(HTTPPort), "--udp-port", fmt.Sprint(UDPPort)}
	for _, v := range AllVIPs {
		args = append(args, "--vip", v.String())
	}
	var err error
	r.server, err = startProcess(r.NS, "server on "+r.Name, filepath.Join(r.lab.Dir, r.Name+".log"), r.lab.opts.Detached, args...)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.NS.Do(func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(VIP4, HTTPPort).String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return nil
		}
		if !r.server.Running() {
			return fmt.Errorf("server on %s exited: %v\n%s", r.Name, r.server.Wait(0), r.server.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server on %s not listening after 10 s: %w", r.Name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StopServer kills the real's servers: new connections to it are refused
// and its health checks fail. A lab opened from another process (Open)
// has no handle on them and kills what runs in the real's namespace.
func (r *Real) StopServer() {
	if r.server != nil {
		r.server.Kill()
		return
	}
	killAll(r.NS, syscall.SIGKILL, time.Second)
}

// PauseServer stops the real's servers with SIGSTOP: the kernel still
// accepts connections and queues data, but nothing answers, so health
// checks time out while established connections only stall. ResumeServer
// undoes it. Only for servers this lab started.
func (r *Real) PauseServer() error {
	if r.server == nil {
		return fmt.Errorf("%s: no server started by this lab", r.Name)
	}
	return r.server.Signal(syscall.SIGSTOP)
}

// ResumeServer continues servers stopped by PauseServer.
func (r *Real) ResumeServer() error {
	if r.server == nil {
		return fmt.Errorf("%s: no server started by this lab", r.Name)
	}
	return r.server.Signal(syscall.SIGCONT)
}

// ServerRunning reports whether the real's servers run.
func (r *Real) ServerRunning() bool { return r.server != nil && r.server.Running() }

// LogTail returns the last n lines of the real's server log.
func (r *Real) LogTail(n int) string { return tailFile(filepath.Join(r.lab.Dir, r.Name+".log"), n) }

// Ping checks from inside the real that its servers answer.
func (r *Real) Ping(ctx context.Context) error {
	return r.NS.Do(func() error {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(VIP4, HTTPPort).String())
		if err == nil {
			c.Close()
		}
		return err
	})
}
