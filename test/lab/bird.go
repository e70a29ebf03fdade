package lab

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// birdConf is the router's BIRD configuration: passive eBGP sessions to
// both LBs (IPv4 and IPv6 each, graceful restart on), everything they send
// imported, nothing exported to them, and the BGP routes exported into the
// router namespace's kernel table, merged into ECMP routes when both LBs
// announce a VIP, so the router forwards by what it learned.
func birdConf(dir string, lbs []*LB) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by the vipcast lab (test/lab)
log "%s" all;
debug protocols { states, routes, events };
router id %s;
protocol device { scan time 10; }
protocol kernel k4 {
	ipv4 { import none; export where source = RTS_BGP; };
	merge paths on;
}
protocol kernel k6 {
	ipv6 { import none; export where source = RTS_BGP; };
	merge paths on;
}
template bgp lb {
	local as %d;
	passive on;
	hold time 9; keepalive time 3;
	graceful restart on;
}
`, filepath.Join(dir, "bird.log"), RouterV4, RouterASN)
	for _, lb := range lbs {
		fmt.Fprintf(&b, `protocol bgp %[1]sv4 from lb {
	neighbor %[2]s as %[4]d; source address %[5]s;
	ipv4 { import all; export none; };
}
protocol bgp %[1]sv6 from lb {
	neighbor %[3]s as %[4]d; source address %[6]s;
	ipv6 { import all; export none; };
}
`, lb.Name, lb.V4, lb.V6, LBASN, RouterV4, RouterV6)
	}
	return b.String()
}

// Bird is the router's BIRD: its control socket, spoken to directly (one
// connection, no process per query, so route polling resolves well below a
// millisecond).
type Bird struct {
	Ctl  string // control socket path, for birdc -s
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

func dialBird(ctl string, timeout time.Duration) (*Bird, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", ctl, time.Second)
		if err == nil {
			b := &Bird{Ctl: ctl, conn: c, r: bufio.NewReader(c)}
			if _, err = b.read(); err == nil { // greeting "0001 BIRD ... ready."
				return b, nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("BIRD control socket %s: %w", ctl, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *Bird) close() {
	if b != nil && b.conn != nil {
		b.conn.Close()
	}
}

// read collects one reply: lines "NNNN-text" and " text" continue it, a
// line "NNNN text" ends it.
func (b *Bird) read() (string, error) {
	_ = b.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sb strings.Builder
	for {
		line, err := b.r.ReadString('\n')
		if err != nil {
			return sb.String(), err
		}
		sb.WriteString(line)
		if len(line) >= 5 && line[4] == ' ' && line[0] >= '0' && line[0] <= '9' {
			return sb.String(), nil
		}
	}
}

// Query runs one birdc command ("show route 203.0.113.1/32") and returns
// the raw reply.
func (b *Bird) Query(cmd string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := fmt.Fprintf(b.conn, "%s\n", cmd); err != nil {
		return "", err
	}
	return b.read()
}

// HasRoute reports whether BIRD's table holds prefix (exact match).
func (b *Bird) HasRoute(prefix string) (bool, error) {
	out, err := b.Query("show route " + prefix)
	if err != nil {
		return false, err
	}
	return strings.Contains(out, prefix), nil
}

// RouteCount returns how many paths BIRD holds for prefix (one per LB
// announcing it).
func (b *Bird) RouteCount(prefix string) (int, error) {
	out, err := b.Query("show route " + prefix + " all")
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "BGP.origin:"), nil
}

// WaitRoute polls until the presence of prefix in BIRD's table is want,
// and returns how long that took.
func (b *Bird) WaitRoute(prefix string, want bool, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		got, err := b.HasRoute(prefix)
		if err != nil {
			return time.Since(start), fmt.Errorf("BIRD query: %w", err)
		}
		if got == want {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("BIRD: route %s present=%v, want %v after %s", prefix, got, want, timeout)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// ProtocolState returns BIRD's info column for a protocol
// ("Established", "Active", "Connect", ...).
func (b *Bird) ProtocolState(proto string) string {
	out, err := b.Query("show protocols " + proto)
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimLeft(line, "0123456789- "))
		if len(f) >= 6 && f[0] == proto {
			return f[len(f)-1]
		}
	}
	return "?"
}

// BirdLog returns BIRD's log (route and session changes of every protocol).
func (l *Lab) BirdLog() string {
	b, err := os.ReadFile(filepath.Join(l.Dir, "bird.log"))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func writeBirdConf(dir string, lbs []*LB) (string, error) {
	path := filepath.Join(dir, "bird.conf")
	return path, os.WriteFile(path, []byte(birdConf(dir, lbs)), 0o644)
}
