package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Capture is tcpdump running on one interface of a lab namespace, printing
// one line per packet (-n -l, no timestamps).
type Capture struct {
	cmd    *exec.Cmd
	out    syncBuf
	errb   syncBuf
	done   chan struct{}
	waited error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartCapture runs tcpdump on iface inside ns with a pcap filter and
// returns once it is capturing.
func StartCapture(ns *NS, iface, filter string, extra ...string) (*Capture, error) {
	return startCapture(ns, iface, filter, "-t", extra)
}

// StartTimedCapture is StartCapture with every line starting with the
// packet's capture time as Unix seconds with microseconds (tcpdump -tt),
// for scenarios that measure when something changed on the wire;
// ParseCaptureTime reads it back.
func StartTimedCapture(ns *NS, iface, filter string, extra ...string) (*Capture, error) {
	return startCapture(ns, iface, filter, "-tt", extra)
}

// ParseCaptureTime splits a line of a timed capture into the packet's
// time and the rest of the line.
func ParseCaptureTime(line string) (time.Time, string, error) {
	stamp, rest, ok := strings.Cut(line, " ")
	sec, frac, ok2 := strings.Cut(stamp, ".")
	if !ok || !ok2 {
		return time.Time{}, line, fmt.Errorf("capture line without a timestamp: %q", line)
	}
	s, err1 := strconv.ParseInt(sec, 10, 64)
	us, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || len(frac) != 6 {
		return time.Time{}, line, fmt.Errorf("capture line with a bad timestamp: %q", line)
	}
	return time.Unix(s, us*1000), rest, nil
}

func startCapture(ns *NS, iface, filter, stamps string, extra []string) (*Capture, error) {
	args := append([]string{"-n", "-l", stamps, "-Z", "root", "-i", iface}, extra...)
	args = append(args, filter)
	c := &Capture{done: make(chan struct{})}
	c.cmd = ns.Cmd(context.Background(), "tcpdump", args...)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.errb
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		c.waited = c.cmd.Wait()
		close(c.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.errb.String(), "listening on") {
		select {
		case <-c.done:
			return nil, fmt.Errorf("tcpdump on %s in %s exited: %v: %s", iface, ns.Name, c.waited, c.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("tcpdump on %s in %s: not capturing after 10 s: %s", iface, ns.Name, c.errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c, nil
}

// Stop ends the capture (SIGINT, so tcpdump flushes) and returns the
// packet lines.
func (c *Capture) Stop() []string {
	// Packets in flight when the caller decided to stop still count.
	time.Sleep(50 * time.Millisecond)
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	var lines []string
	for _, l := range strings.Split(c.out.String(), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Summary is tcpdump's closing statistics ("N packets captured ...").
func (c *Capture) Summary() string { return strings.TrimSpace(c.errb.String()) }
