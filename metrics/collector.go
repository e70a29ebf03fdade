// Package metrics exports vipcast's state to Prometheus. Its Collector
// reads the BPF maps (through small interfaces the daemon implements) at
// scrape time, so a scrape always sees the kernel's current counters and
// nothing runs between scrapes.
//
// Every label is bounded by configuration: vip ("203.0.113.1:80/tcp") by
// max_vips, real ("192.0.2.11") together with vip by max_reals, address by
// max_vips, peer by the configured BGP peers, cpu by the forwarding cores;
// the other labels have the fixed value sets listed in each metric's help.
// Nothing is labelled by client, flow or health-check target.
//
// Per real there are three series (packets, bytes, up) and per VIP six:
// 36,000 series for 1,000 VIPs × 10 reals, and a scrape's cost grows with
// that number. So the finer states of reals (draining or down, failing
// checks) are counted per VIP rather than exported per real, which would
// double it; which reals they are is what `vipcast real list` and
// `vipcast health` tell.
package metrics

import (
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"vipcast/lb"
)

// part is a piece of state the collector reads and may fail to read.
type part int

const (
	partStats part = iota
	partCounters
	partHealthcheck
	numParts
)

func (p part) String() string {
	switch p {
	case partStats:
		return "lb_stats"
	case partCounters:
		return "counters"
	case partHealthcheck:
		return "healthcheck_stats"
	}
	return "part(" + strconv.Itoa(int(p)) + ")"
}

// spec is one metric family the collector exports.
type spec struct {
	name, help string
	typ        dto.MetricType
	labels     []string // sorted by name: the order of every metric's label pairs
	desc       *prometheus.Desc
}

type specs struct {
	buildInfo, xdpActions, lookups, dropped, passedMalformed, icmpReplies, icmpErrorsFwd,
	vipPackets, vipBytes, vipReals, vipUnhealthy, realPackets, realBytes, realUp,
	hcPackets, connLimit, announced, peerUp, gatewayKnown, scrapeErrors *spec
}

func newSpecs() (specs, []*spec) {
	var all []*spec
	def := func(name string, typ dto.MetricType, help string, labels ...string) *spec {
		s := &spec{name: "vipcast_" + name, help: help, typ: typ, labels: labels}
		if !slices.IsSorted(labels) {
			panic("metrics: labels of " + name + " not sorted")
		}
		s.desc = prometheus.NewDesc(s.name, help, labels, nil)
		all = append(all, s)
		return s
	}
	const counter, gauge = dto.MetricType_COUNTER, dto.MetricType_GAUGE
	s := specs{
		buildInfo: def("build_info", gauge,
			"Always 1; labelled with the vipcastd version and the Go version it was built with.",
			"goversion", "version"),
		xdpActions: def("xdp_actions_total", counter,
			"Packets the XDP balancer handled, by verdict (aborted, drop, pass, tx). Non-VIP traffic is passed.",
			"action"),
		lookups: def("conn_table_lookups_total", counter,
			"Connection-table lookups of VIP packets, by outcome: hit (per-CPU table), fallback_hit (shared table), "+
				"repick_down (entry names a real that is down or gone; re-placed by the ring), "+
				"miss_tcp_syn (a new connection, placed by the ring whatever the table holds), "+
				"miss_tcp_other (established flow without an entry), miss_udp. "+
				"The outcomes exclude each other; VIPs with lru_bypass do no lookups.",
			"result"),
		dropped: def("dropped_packets_total", counter,
			"Packets to a VIP that the balancer dropped, by reason: fragment, ip_options, malformed, "+
				"no_real (empty ring), no_gateway (gateway MAC unknown), too_big (over the tunnel MTU, no ICMP sent).",
			"reason"),
		passedMalformed: def("passed_malformed_packets_total", counter,
			"Malformed packets not addressed to a VIP, left to the kernel."),
		icmpReplies: def("icmp_replies_total", counter,
			"ICMP messages the balancer answered itself, by type: echo (echo replies for a VIP) and "+
				"too_big (fragmentation-needed / packet-too-big for packets over the tunnel MTU).",
			"type"),
		icmpErrorsFwd: def("icmp_errors_forwarded_total", counter,
			"ICMP errors about a VIP flow that were forwarded to the flow's real."),
		vipPackets: def("vip_packets_total", counter,
			"Packets forwarded to a real of the VIP.",
			"vip"),
		vipBytes: def("vip_bytes_total", counter,
			"Bytes (of the client's IP packet, before encapsulation) forwarded to a real of the VIP.",
			"vip"),
		vipReals: def("vip_reals", gauge,
			"Reals of the VIP by data-plane state: up (in the ring), draining (keeps its flows, gets no new ones), "+
				"down (gets nothing: failing checks or disabled).",
			"state", "vip"),
		vipUnhealthy: def("vip_unhealthy_reals", gauge,
			"Reals of the VIP whose health checks fail, whatever the operator set them to.",
			"vip"),
		realPackets: def("real_packets_total", counter,
			"Packets of the VIP forwarded to this real.",
			"real", "vip"),
		realBytes: def("real_bytes_total", counter,
			"Bytes (of the client's IP packet, before encapsulation) of the VIP forwarded to this real.",
			"real", "vip"),
		realUp: def("real_up", gauge,
			"1 while the real is in the VIP's ring (takes new flows); 0 while it is draining or down.",
			"real", "vip"),
		hcPackets: def("healthcheck_encap_packets_total", counter,
			"Packets seen by the health-check encapsulation program on egress, by outcome: encapsulated, "+
				"no_mark (not a health check), unknown_mark (no real has the mark), not_ip, error (dropped).",
			"result"),
		connLimit: def("conn_table_entries_limit", gauge,
			"Capacity of the connection table of a forwarding CPU.",
			"cpu"),
		announced: def("vip_announced", gauge,
			"1 while the VIP address is announced over BGP, 0 while it is withdrawn.",
			"address"),
		peerUp: def("bgp_peer_up", gauge,
			"1 while the BGP session with the peer is established.",
			"peer"),
		gatewayKnown: def("gateway_mac_known", gauge,
			"1 when the gateway MAC is known; VIP traffic is dropped (reason no_gateway) while it is not."),
		scrapeErrors: def("scrape_errors_total", counter,
			"Scrapes in which a part of the data plane could not be read, by part "+
				"(lb_stats, counters, healthcheck_stats); that part's metrics are missing from those scrapes.",
			"part"),
	}
	return s, all
}

// Collector is a prometheus.Collector that reads a Source at scrape time.
// It builds the per-VIP and per-real series in blocks, sharing label pairs
// between families, because with 10,000 reals making each series on its
// own costs more than reading the kernel's maps.
//
// A scrape never fails as a whole: a part that cannot be read is left out
// of that scrape and counted in vipcast_scrape_errors_total, and every
// other metric is still reported.
type Collector struct {
	src        Source
	log        *slog.Logger
	latency    *CheckLatency
	goVersion  string
	s          specs
	all        []*spec
	names      map[string]*string // label names, shared by every scrape
	stateVals  [3]lb.RealState    // up, draining, down
	states     [3]*dto.LabelPair  // state="..." for each of stateVals
	stateOrder []int              // indexes of stateVals, by name

	errors  [numParts]atomic.Uint64 // scrapes in which the part failed
	mu      sync.Mutex
	failing [numParts]bool // as of the last scrape, for logging changes
}

// NewCollector returns a collector reading src. src.DataPlane must be set.
func NewCollector(src Source) *Collector {
	if src.DataPlane == nil {
		panic("metrics: NewCollector without a DataPlane")
	}
	log := src.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		src:       src,
		log:       log.With("component", "metrics"),
		latency:   newCheckLatency(),
		goVersion: runtime.Version(),
		names:     map[string]*string{},
		stateVals: [3]lb.RealState{lb.Up, lb.Draining, lb.Down},
	}
	c.s, c.all = newSpecs()
	for _, s := range c.all {
		for _, l := range s.labels {
			if c.names[l] == nil {
				c.names[l] = &l
			}
		}
	}
	for i, st := range c.stateVals {
		v := st.String()
		c.states[i] = &dto.LabelPair{Name: c.names["state"], Value: &v}
		c.stateOrder = append(c.stateOrder, i)
	}
	slices.SortFunc(c.stateOrder, func(a, b int) int {
		return strings.Compare(c.stateVals[a].String(), c.stateVals[b].String())
	})
	return c
}

// CheckLatency is the collector's health-check latency histogram: pass its
// Observe method as health.Options.Observe.
func (c *Collector) CheckLatency() *CheckLatency { return c.latency }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range c.all {
		ch <- s.desc
	}
	c.latency.describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.build() {
		for _, m := range f.out {
			ch <- protoMetric{f.spec.desc, m}
		}
	}
	c.latency.collect(ch)
}

// protoMetric is an already built metric, for Collect.
type protoMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (p protoMetric) Desc() *prometheus.Desc { return p.desc }

func (p protoMetric) Write(out *dto.Metric) error {
	out.Label, out.Counter, out.Gauge = p.m.Label, p.m.Counter, p.m.Gauge
	return nil
}

// family builds the metrics of one spec, allocating them in blocks.
type family struct {
	spec     *spec
	out      []*dto.Metric
	metrics  []dto.Metric
	values   []float64
	counters []dto.Counter
	gauges   []dto.Gauge
}

func newFamily(s *spec, n int) *family {
	f := &family{spec: s, out: make([]*dto.Metric, 0, n)}
	f.grow(n)
	return f
}

func (f *family) grow(n int) {
	n = max(n, 8)
	f.metrics = make([]dto.Metric, 0, n)
	f.values = make([]float64, 0, n)
	if f.spec.typ == dto.MetricType_COUNTER {
		f.counters = make([]dto.Counter, 0, n)
	} else {
		f.gauges = make([]dto.Gauge, 0, n)
	}
}

// add appends a metric; labels must follow spec.labels and is not copied.
func (f *family) add(v float64, labels []*dto.LabelPair) {
	if len(f.metrics) == cap(f.metrics) {
		// A new block: the metrics already added keep pointing at the old one.
		f.grow(2 * cap(f.metrics))
	}
	i := len(f.metrics)
	f.metrics = f.metrics[:i+1]
	f.values = append(f.values, v)
	m := &f.metrics[i]
	m.Label = labels
	if f.spec.typ == dto.MetricType_COUNTER {
		f.counters = f.counters[:i+1]
		f.counters[i].Value = &f.values[i]
		m.Counter = &f.counters[i]
	} else {
		f.gauges = f.gauges[:i+1]
		f.gauges[i].Value = &f.values[i]
		m.Gauge = &f.gauges[i]
	}
	f.out = append(f.out, m)
}

// addWith appends a metric of a small family, making its label pairs from
// values in spec.labels order.
func (c *Collector) addWith(f *family, v float64, values ...string) {
	labels := make([]*dto.LabelPair, len(values))
	for i, val := range values {
		labels[i] = &dto.LabelPair{Name: c.names[f.spec.labels[i]], Value: &val}
	}
	f.add(v, labels)
}

// build reads the source and returns the collector's metrics (without the
// latency histogram).
func (c *Collector) build() []*family {
	var (
		errs [numParts]error
		fams []*family
	)
	dp := c.src.DataPlane
	if st, err := dp.Stats(); err != nil {
		errs[partStats] = err
	} else {
		fams = append(fams, c.statsFamilies(st)...)
	}
	vips, err := dp.Counters()
	if err != nil {
		errs[partCounters] = err
		infos := dp.VIPs()
		vips = make([]lb.VIPCounters, len(infos))
		for i := range infos {
			vips[i].VIPInfo = infos[i]
		}
	}
	fams = append(fams, c.vipFamilies(vips, err == nil)...)
	if c.src.Healthcheck != nil {
		if st, err := c.src.Healthcheck.Stats(); err != nil {
			errs[partHealthcheck] = err
		} else {
			f := newFamily(c.s.hcPackets, 5)
			c.addWith(f, float64(st.Encapsulated), "encapsulated")
			c.addWith(f, float64(st.NoMark), "no_mark")
			c.addWith(f, float64(st.UnknownMark), "unknown_mark")
			c.addWith(f, float64(st.NotIp), "not_ip")
			c.addWith(f, float64(st.Errors), "error")
			fams = append(fams, f)
		}
	}
	fams = append(fams, c.controlFamilies(vips)...)

	c.noteErrors(errs)
	f := newFamily(c.s.scrapeErrors, int(numParts))
	for p := range numParts {
		c.addWith(f, float64(c.errors[p].Load()), p.String())
	}
	fams = append(fams, f)

	return fams
}

func (c *Collector) statsFamilies(st lb.Stats) []*family {
	xdp, lookups, dropped := newFamily(c.s.xdpActions, 4), newFamily(c.s.lookups, 6), newFamily(c.s.dropped, 6)
	icmp, icmpFwd, passed := newFamily(c.s.icmpReplies, 2), newFamily(c.s.icmpErrorsFwd, 1), newFamily(c.s.passedMalformed, 1)
	for _, m := range []struct {
		f     *family
		label string
		v     uint64
	}{
		{xdp, "aborted", st.XdpAborted},
		{xdp, "drop", st.XdpDrop},
		{xdp, "pass", st.XdpPass},
		{xdp, "tx", st.XdpTx},
		{lookups, "hit", st.ConnHit},
		{lookups, "fallback_hit", st.FallbackHit},
		{lookups, "repick_down", st.ConnRepickDown},
		{lookups, "miss_tcp_syn", st.ConnMissTcpSyn},
		{lookups, "miss_tcp_other", st.ConnMissTcpOther},
		{lookups, "miss_udp", st.ConnMissUdp},
		{dropped, "fragment", st.DropFragment},
		{dropped, "ip_options", st.DropIpOptions},
		{dropped, "malformed", st.DropMalformed},
		{dropped, "no_real", st.DropNoReal},
		{dropped, "no_gateway", st.DropNoGateway},
		{dropped, "too_big", st.DropTooBig},
		{icmp, "echo", st.IcmpEchoReply},
		{icmp, "too_big", st.IcmpTooBig},
	} {
		c.addWith(m.f, float64(m.v), m.label)
	}
	icmpFwd.add(float64(st.IcmpErrorFwd), nil)
	passed.add(float64(st.PassMalformed), nil)
	return []*family{xdp, lookups, dropped, icmp, icmpFwd, passed}
}

// vipFamilies reports the per-VIP and per-real series: the bulk of a
// scrape. Their label pairs are made in blocks and shared between the
// families that carry the same labels, and the series are sent in the
// order the registry sorts them into (label values as strings, in label
// name order), which makes its sort a single pass.
func (c *Collector) vipFamilies(vips []lb.VIPCounters, withCounters bool) []*family {
	type real struct {
		vip     int // index in vips
		labels  []*dto.LabelPair
		up      float64
		counter lb.Counter
	}
	nReals := 0
	for _, v := range vips {
		nReals += len(v.Reals)
	}
	var (
		vipVals   = make([]string, len(vips))
		vipPairs  = make([]dto.LabelPair, len(vips))
		vipLabels = make([][]*dto.LabelPair, len(vips))
		vipLabel  = make([]*dto.LabelPair, len(vips))
		inState   = make([][3]int, len(vips))

		reals      = make([]real, 0, nReals)
		realVals   = make([]string, nReals)
		realPairs  = make([]dto.LabelPair, nReals)
		realLabels = make([]*dto.LabelPair, 2*nReals)
	)
	for i, v := range vips {
		vipVals[i] = v.Key.String()
		vp := &vipPairs[i]
		vp.Name, vp.Value = c.names["vip"], &vipVals[i]
		vipLabel[i] = vp
		vipLabels[i] = vipLabel[i : i+1 : i+1]
		for j, r := range v.Reals {
			ri := len(reals)
			realVals[ri] = r.Addr.String()
			rp := &realPairs[ri]
			rp.Name, rp.Value = c.names["real"], &realVals[ri]
			labels := realLabels[2*ri : 2*ri+2 : 2*ri+2]
			labels[0], labels[1] = rp, vp
			re := real{vip: i, labels: labels, up: boolValue(r.State == lb.Up)}
			if withCounters {
				re.counter = v.RealCounters[j]
			}
			reals = append(reals, re)
			if k := slices.Index(c.stateVals[:], r.State); k >= 0 {
				inState[i][k]++
			}
		}
	}
	vipOrder := make([]int, len(vips))
	for i := range vipOrder {
		vipOrder[i] = i
	}
	slices.SortFunc(vipOrder, func(a, b int) int { return strings.Compare(vipVals[a], vipVals[b]) })
	slices.SortFunc(reals, func(a, b real) int {
		if c := strings.Compare(*a.labels[0].Value, *b.labels[0].Value); c != 0 {
			return c
		}
		return strings.Compare(vipVals[a.vip], vipVals[b.vip])
	})

	realUp := newFamily(c.s.realUp, nReals)
	for _, r := range reals {
		realUp.add(r.up, r.labels)
	}
	vipReals := newFamily(c.s.vipReals, len(c.states)*len(vips))
	stateLabels := make([]*dto.LabelPair, 2*len(c.states)*len(vips))
	for _, k := range c.stateOrder {
		for _, i := range vipOrder {
			labels := stateLabels[:2:2]
			stateLabels = stateLabels[2:]
			labels[0], labels[1] = c.states[k], vipLabel[i]
			vipReals.add(float64(inState[i][k]), labels)
		}
	}
	fams := []*family{realUp, vipReals}
	if withCounters {
		vipPackets, vipBytes := newFamily(c.s.vipPackets, len(vips)), newFamily(c.s.vipBytes, len(vips))
		for _, i := range vipOrder {
			vipPackets.add(float64(vips[i].Counter.Packets), vipLabels[i])
			vipBytes.add(float64(vips[i].Counter.Bytes), vipLabels[i])
		}
		realPackets, realBytes := newFamily(c.s.realPackets, nReals), newFamily(c.s.realBytes, nReals)
		for _, r := range reals {
			realPackets.add(float64(r.counter.Packets), r.labels)
			realBytes.add(float64(r.counter.Bytes), r.labels)
		}
		fams = append(fams, vipPackets, vipBytes, realPackets, realBytes)
	}
	if c.src.RealHealth != nil {
		unhealthy := map[lb.VIPKey]int{}
		for _, h := range c.src.RealHealth() {
			if !h.Healthy {
				unhealthy[h.VIP]++
			}
		}
		f := newFamily(c.s.vipUnhealthy, len(vips))
		for _, i := range vipOrder {
			f.add(float64(unhealthy[vips[i].Key]), vipLabels[i])
		}
		fams = append(fams, f)
	}
	return fams
}

// controlFamilies reports the daemon's state: BGP, gateway, build, tables.
func (c *Collector) controlFamilies(vips []lb.VIPCounters) []*family {
	var fams []*family
	if c.src.Announced != nil {
		// Every VIP address: 1 if announced, else 0, so that a withdrawn
		// VIP is a visible 0 rather than a missing series.
		state := make(map[netip.Addr]bool, len(vips))
		for _, v := range vips {
			state[v.Key.Addr] = false
		}
		for _, a := range c.src.Announced() {
			state[a] = true
		}
		addrs := slices.SortedFunc(func(yield func(netip.Addr) bool) {
			for a := range state {
				if !yield(a) {
					return
				}
			}
		}, netip.Addr.Compare)
		f := newFamily(c.s.announced, len(addrs))
		for _, a := range addrs {
			c.addWith(f, boolValue(state[a]), a.String())
		}
		fams = append(fams, f)
	}
	if c.src.Peers != nil {
		peers := c.src.Peers()
		f := newFamily(c.s.peerUp, len(peers))
		seen := make(map[string]bool, len(peers))
		for _, p := range peers {
			if !seen[p.Peer] { // a duplicate series would be invalid
				seen[p.Peer] = true
				c.addWith(f, boolValue(p.Up), p.Peer)
			}
		}
		fams = append(fams, f)
	}
	if c.src.GatewayKnown != nil {
		f := newFamily(c.s.gatewayKnown, 1)
		f.add(boolValue(c.src.GatewayKnown()), nil)
		fams = append(fams, f)
	}
	tables, _ := c.src.DataPlane.ConnTables()
	limits := newFamily(c.s.connLimit, len(tables))
	for _, t := range tables {
		c.addWith(limits, float64(t.Entries), strconv.Itoa(t.CPU))
	}
	version := c.src.BuildVersion
	if version == "" {
		version = "unknown"
	}
	build := newFamily(c.s.buildInfo, 1)
	c.addWith(build, 1, c.goVersion, version)
	return append(fams, limits, build)
}

// noteErrors counts the parts that failed in this scrape and logs each
// part that starts or stops failing (not every failed scrape).
func (c *Collector) noteErrors(errs [numParts]error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, err := range errs {
		if err != nil {
			c.errors[p].Add(1)
		}
		was := c.failing[p]
		c.failing[p] = err != nil
		switch {
		case err != nil && !was:
			c.log.Warn("cannot read data-plane state; its metrics are left out until this clears",
				"part", part(p).String(), "error", err)
		case err == nil && was:
			c.log.Info("data-plane state readable again", "part", part(p).String())
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
