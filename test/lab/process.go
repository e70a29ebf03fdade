package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// Process is a long-running program the lab started inside a namespace
// (BIRD, vipcastd, a real's servers). Its output goes to a log file in the
// lab directory, so it outlives the lab command that started it.
type Process struct {
	Name string // for messages: "vipcastd on lb1"
	Log  string // path of its log file
	from int64  // where its output starts in Log
	pid  int
	done chan struct{}
	err  error // exit status, once done is closed
}

// startProcess runs argv inside ns. detached processes start a session of
// their own and survive the caller; the others get SIGKILL when the
// caller dies, so a killed test run leaves no daemons behind.
func startProcess(ns *NS, name, logPath string, detached bool, argv ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	from, _ := logf.Seek(0, io.SeekEnd)
	fmt.Fprintf(logf, "=== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	// The lab's daemons run ahead of ordinary processes, as they would on
	// hosts of their own: its timing checks measure vipcast, not a busy
	// machine (make test runs other packages alongside). nice execs the
	// program, so the pid stays its own.
	argv = append([]string{"nice", "-n", "-10"}, argv...)
	cmd := ns.Cmd(context.Background(), argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if !detached {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns.Name, err)
	}
	p := &Process{Name: name, Log: logPath, from: from, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (nsenter execs the program, so it is the
// program's own).
func (p *Process) Pid() int { return p.pid }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return fmt.Errorf("%s: not running (%v)", p.Name, p.err)
	}
	return syscall.Kill(p.pid, sig)
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0).
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running after %s", p.Name, p.pid, timeout)
	}
}

// Stop sends SIGTERM and waits up to timeout, then kills. It returns the
// exit error, or an error saying the process had to be killed.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return p.err
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM; killed", p.Name, p.pid, timeout)
	}
}

// Kill ends the process with SIGKILL and waits (bounded) for it.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string { return tailFile(p.Log, n) }

// Output returns what this process (not earlier ones with the same log)
// wrote.
func (p *Process) Output() string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if p.from <= int64(len(b)) {
		b = b[p.from:]
	}
	return string(b)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
