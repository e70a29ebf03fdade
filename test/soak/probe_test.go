//go:build soak

package soak

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"vipcast/bpf"
	"vipcast/test/lab"
)

// What the soak measures of vipcastd: goroutines and heap from its own
// metrics (client_golang's Go collector on the metrics listener), open
// files and RSS from /proc, and the entries of its BPF maps from the pins.
// The connection tables are left out: fixed-size arrays, bounded by
// construction.

// metricsAddr is vipcastd's metrics listener inside the LB's namespace.
var metricsAddr = netip.MustParseAddrPort("127.0.0.1:9641")

// mapCounts are the entries of vipcastd's maps that follow configuration.
type mapCounts struct {
	VIPs, VIPAddrs int // services; distinct VIP addresses
	Reals          int // live entries of the reals array
	Retired        int // ids retired by deletions, free for reuse
	Rings          int // ring slots holding an inner map
	HCMarks        int // healthcheck program's mark -> real entries
}

func (m mapCounts) String() string {
	return fmt.Sprintf("vips %d, vip_addrs %d, reals %d (+%d retired ids), rings %d, hc_reals %d",
		m.VIPs, m.VIPAddrs, m.Reals, m.Retired, m.Rings, m.HCMarks)
}

// sample is vipcastd measured once.
type sample struct {
	At         time.Time
	Goroutines int
	HeapInuse  int64
	FDs        int
	RSS        int64
	Maps       mapCounts
}

// measure takes one sample of the LB's vipcastd.
func measure(x *lab.LB) (sample, error) {
	s := sample{At: time.Now()}
	m, err := scrape(x)
	if err != nil {
		return s, err
	}
	g, ok := m["go_goroutines"]
	if !ok {
		return s, errors.New("metrics: no go_goroutines")
	}
	s.Goroutines, s.HeapInuse = int(g), int64(m["go_memstats_heap_inuse_bytes"])
	pid := x.Process().Pid()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	if s.RSS, err = rss(pid); err != nil {
		return s, err
	}
	s.Maps, err = countMaps(filepath.Join(x.PinDir, x.Iface))
	return s, err
}

// scrape reads vipcastd's metrics. The connection is made inside the LB's
// namespace (lab.Dial), where the listener is; net/http's transport would
// dial from another thread, in the host's namespace.
func scrape(x *lab.LB) (map[string]float64, error) {
	c, err := lab.Dial(x.NS, "tcp", metricsAddr, lab.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: vipcastd\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue // only unlabelled series are needed
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/pid/status")
}

// countMaps counts entries in the maps pinned under dir (lb's layout) and
// in the healthcheck program's table, found through its pinned TC link.
func countMaps(dir string) (mapCounts, error) {
	var c mapCounts
	open := func(name string) (*ebpf.Map, error) {
		return ebpf.LoadPinnedMap(filepath.Join(dir, name), &ebpf.LoadPinOptions{ReadOnly: true})
	}
	vips, err := open("vips")
	if err != nil {
		return c, err
	}
	defer vips.Close()
	var key bpf.BalancerVipKey
	var meta bpf.BalancerVipMeta
	it := vips.Iterate()
	for it.Next(&key, &meta) {
		c.VIPs++
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("vips: %w", err)
	}
	addrs, err := open("vip_addrs")
	if err != nil {
		return c, err
	}
	defer addrs.Close()
	var refs uint32
	it = addrs.Iterate()
	for it.Next(&key, &refs) {
		c.VIPAddrs++
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("vip_addrs: %w", err)
	}
	reals, err := open("reals")
	if err != nil {
		return c, err
	}
	defer reals.Close()
	var def bpf.BalancerRealDef
	for id := uint32(0); id < reals.MaxEntries(); id++ {
		if err := reals.Lookup(id, &def); err != nil {
			return c, fmt.Errorf("reals[%d]: %w", id, err)
		}
		switch {
		case def.VipNum == ^uint32(0):
			c.Retired++
		case def.Addr != [4]uint32{}:
			c.Reals++
		}
	}
	rings, err := open("rings")
	if err != nil {
		return c, err
	}
	defer rings.Close()
	for i := uint32(0); i < rings.MaxEntries(); i++ {
		var inner uint32 // the inner map's id
		if err := rings.Lookup(i, &inner); err == nil {
			c.Rings++
		} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return c, fmt.Errorf("rings[%d]: %w", i, err)
		}
	}
	c.HCMarks, err = countHCMarks(filepath.Join(dir, "tc_egress_link"))
	return c, err
}

// countHCMarks counts the entries of the hc_reals map of the program
// behind a pinned TC link (vipcastd does not pin that map).
func countHCMarks(linkPin string) (int, error) {
	l, err := link.LoadPinnedLink(linkPin, nil)
	if err != nil {
		return 0, fmt.Errorf("healthcheck link: %w", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return 0, err
	}
	prog, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return 0, err
	}
	defer prog.Close()
	pinfo, err := prog.Info()
	if err != nil {
		return 0, err
	}
	ids, _ := pinfo.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return 0, err
		}
		minfo, err := m.Info()
		if err != nil || minfo.Name != "hc_reals" {
			m.Close()
			continue
		}
		n := 0
		var mark uint32
		var real bpf.HealthcheckHcReal
		it := m.Iterate()
		for it.Next(&mark, &real) {
			n++
		}
		err = it.Err()
		m.Close()
		return n, err
	}
	return 0, errors.New("healthcheck program has no hc_reals map")
}

// settledSample waits (bounded) until vipcastd's goroutine count stops
// moving, then returns the median of a few samples, so one in-flight
// health check or scrape does not decide a comparison.
func settledSample(x *lab.LB, limit time.Duration) (sample, error) {
	deadline := time.Now().Add(limit)
	prev := -1
	for time.Now().Before(deadline) {
		s, err := measure(x)
		if err != nil {
			return s, err
		}
		if s.Goroutines == prev {
			break
		}
		prev = s.Goroutines
		time.Sleep(time.Second)
	}
	var samples []sample
	for range 5 {
		s, err := measure(x)
		if err != nil {
			return s, err
		}
		samples = append(samples, s)
		time.Sleep(300 * time.Millisecond)
	}
	med := func(f func(sample) int64) int64 {
		v := make([]int64, len(samples))
		for i, s := range samples {
			v[i] = f(s)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	out := samples[len(samples)-1]
	out.Goroutines = int(med(func(s sample) int64 { return int64(s.Goroutines) }))
	out.FDs = int(med(func(s sample) int64 { return int64(s.FDs) }))
	out.RSS = med(func(s sample) int64 { return s.RSS })
	out.HeapInuse = med(func(s sample) int64 { return s.HeapInuse })
	return out, nil
}
