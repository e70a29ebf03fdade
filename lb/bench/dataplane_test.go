package bench

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
	"vipcast/lb"
)

// Knobs for runs by hand (go test ./lb/bench/ -bench DataPlane -args ...);
// make bench uses the defaults.
var (
	flagRounds  = flag.Int("dataplane.rounds", 5, "measured rounds of every data-plane scenario")
	flagPackets = flag.Int("dataplane.packets", 3_000_000, "packets per scenario per round")
	flagWarmup  = flag.Int("dataplane.warmup", 2_000_000, "packets per scenario in the warm-up round (the miss scenario needs more than its table holds)")
	flagMissTbl = flag.Int("dataplane.misstable", 0, "connection-table size (lb.Config.ConnTableSize) of the miss scenario's balancer; 0: lb's default")
	flagOnly    = flag.String("dataplane.only", "", "comma-separated scenario ids to run besides the floor (e.g. c-miss, for profiling); default all")
)

const (
	batchSize   = 64 // frames per batch: the veth NAPI budget, so the peer keeps up within the batch
	nReals      = 100
	cycledFlows = 100_000
	sampleAt    = 1000 // the peer copies the 1000th frame of a warm-up run: a recycled buffer
	controlPkts = 200_000
	profilePkts = 1_000_000
)

var (
	clientMAC = testpkt.MAC("02:00:5e:00:00:01")
	lbMAC     = testpkt.MAC("02:00:5e:00:00:02")
	gwMAC     = testpkt.MAC("02:00:5e:00:00:03")

	vipKey     = lb.VIPKey{Addr: netip.MustParseAddr("203.0.113.1"), Port: 80, Proto: lb.TCP}
	nonVIP     = netip.MustParseAddr("192.0.2.2") // the LB host's own address in the lab
	clientAddr = netip.MustParseAddr("192.0.2.10")
	clientPort = uint16(31337)
	// Cycled clients come from 198.18.0.0/15, the range RFC 2544 sets aside
	// for benchmarks: 131,072 addresses.
	cycleBase  = netip.MustParseAddr("198.18.0.0")
	cycleSpan  = uint32(1 << 17)
	cyclePort  = uint16(40000)
	missPort   = uint16(1024)
	realBase   = netip.MustParseAddr("198.51.100.1")
	payload    = []byte("vipcast-bp") // 10 bytes: 64-byte frames
	srcPrefix4 = [2]byte{172, 16}     // lb's default outer source prefix
)

// tcpFrame is a client -> LB frame to dst:80.
func tcpFrame(src netip.Addr, sport uint16, dst netip.Addr, flags uint8) []byte {
	seg := testpkt.TCP{SrcPort: sport, DstPort: 80, Seq: 1, Ack: 1, Flags: flags, Window: 8192}.Segment(src, dst, payload)
	ip := testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoTCP, Src: src, Dst: dst}.Packet(seg)
	return testpkt.Eth{Dst: lbMAC, Src: clientMAC, Type: testpkt.EtherTypeIPv4}.Frame(ip)
}

func addrPlus(a netip.Addr, n uint32) netip.Addr {
	v := a.As4()
	binary.BigEndian.PutUint32(v[:], binary.BigEndian.Uint32(v[:])+n)
	return netip.AddrFrom4(v)
}

func hostOrder(a netip.Addr) uint32 { v := a.As4(); return binary.BigEndian.Uint32(v[:]) }

// Modes of bench_peer (PEER_* in bench.c).
const (
	peerSwapped = 1
	peerIPIP    = 2
)

// xdpMd is struct xdp_md, the context of an XDP test run.
type xdpMd struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

type scenario struct {
	id, name string
	prog     *ebpf.Program
	frame    []byte
	bal      *lb.Balancer     // nil for the bench.c programs
	peer     *BenchPeerConfig // nil when nothing is transmitted
	check    func(d *delta) error
	sample   func(frame []byte, d *delta) error // checks one transmitted frame
}

// counts is everything the benchmark reads before and after a run.
type counts struct {
	lb     lb.Stats
	reals  []uint64
	peer   BenchPeerStats
	offCPU uint64 // peer frames counted on CPUs other than the pinned one
}

type delta struct {
	n      uint64
	lb     lb.Stats
	reals  []uint64
	peer   BenchPeerStats
	offCPU uint64
}

// diffStruct subtracts the uint64 fields of two counter structs.
func diffStruct[T any](after, before T) T {
	var out T
	a, b, o := reflect.ValueOf(after), reflect.ValueOf(before), reflect.ValueOf(&out).Elem()
	for i := range o.NumField() {
		if f := o.Field(i); f.Kind() == reflect.Uint64 && f.CanSet() {
			f.SetUint(a.Field(i).Uint() - b.Field(i).Uint())
		}
	}
	return out
}

func addStruct[T any](sum *T, v T) {
	s, x := reflect.ValueOf(sum).Elem(), reflect.ValueOf(v)
	for i := range s.NumField() {
		if f := s.Field(i); f.Kind() == reflect.Uint64 && f.CanSet() {
			f.SetUint(f.Uint() + x.Field(i).Uint())
		}
	}
}

type dataPlane struct {
	lab   *lab
	cpu   int
	objs  BenchObjects
	reals []netip.Addr
}

func (e *dataPlane) read(s *scenario) (counts, error) {
	var c counts
	var per []BenchPeerStats
	if err := e.objs.PeerStats.Lookup(uint32(0), &per); err != nil {
		return c, fmt.Errorf("read peer stats: %w", err)
	}
	for cpu, p := range per {
		addStruct(&c.peer, p)
		if cpu != e.cpu {
			c.offCPU += p.Frames
		}
	}
	if s.bal == nil {
		return c, nil
	}
	var err error
	if c.lb, err = s.bal.Stats(); err != nil {
		return c, err
	}
	c.reals = make([]uint64, len(e.reals))
	for i, r := range e.reals {
		rc, err := s.bal.RealStats(vipKey, r)
		if err != nil {
			return c, err
		}
		c.reals[i] = rc.Packets
	}
	return c, nil
}

// timing is the cost of one run per packet: the calling thread's CPU time
// (the figure reported) and the wall-clock time.
type timing struct{ cpu, wall float64 }

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err) // cannot fail for the calling thread
	}
	return time.Duration(ts.Nano())
}

// run sends n packets through the scenario's program and returns the time
// per packet. An interrupted test run is restarted by cilium/ebpf from
// scratch; the clocks and the counters restart with it.
//
// Why thread CPU time: the test run executes on this thread, and so does
// the softirq work its batches raise (the veth transmit, bench_peer), which
// is accounted to the task it interrupts on this kernel (no
// IRQ_TIME_ACCOUNTING). With PREEMPT_NONE the test run yields only at its
// need_resched check between batches, so when other processes want the
// CPU, thread CPU time excludes their share where wall time does not. That
// makes it close to the kernel's own BPF_PROG_TEST_RUN duration (which
// leaves those cond_resched pauses out too), plus one syscall and one
// page-pool setup per run.
func (e *dataPlane) run(s *scenario, n uint32, restore bool, sampleReq uint32) (timing, *delta, error) {
	if s.peer != nil {
		cfg := *s.peer
		if restore {
			cfg.Restore = 1
		}
		if err := e.objs.PeerCfg.Put(uint32(0), &cfg); err != nil {
			return timing{}, nil, fmt.Errorf("write peer config: %w", err)
		}
	}
	if err := e.objs.Sample.Put(uint32(0), &BenchSample{Req: sampleReq}); err != nil {
		return timing{}, nil, fmt.Errorf("reset sample: %w", err)
	}
	var (
		before   counts
		start    time.Time
		startCPU time.Duration
		readErr  error
	)
	begin := func() {
		before, readErr = e.read(s)
		start, startCPU = time.Now(), threadCPU()
	}
	opts := &ebpf.RunOptions{
		Data:      s.frame,
		Repeat:    n,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: batchSize,
		Context:   xdpMd{DataEnd: uint32(len(s.frame)), IngressIfindex: uint32(e.lab.lbIndex)},
		//lint:ignore SA1019 the suggested ReportMetric cannot restart our counter snapshot; Reset is the only hook into cilium/ebpf's EINTR retry.
		Reset: begin,
	}
	begin()
	_, err := s.prog.Run(opts)
	cpu, wall := threadCPU()-startCPU, time.Since(start)
	if err != nil {
		return timing{}, nil, fmt.Errorf("%s: test run: %w", s.id, err)
	}
	if readErr != nil {
		return timing{}, nil, readErr
	}
	after, err := e.read(s)
	if err != nil {
		return timing{}, nil, err
	}
	d := &delta{
		n:      uint64(n),
		lb:     diffStruct(after.lb, before.lb),
		peer:   diffStruct(after.peer, before.peer),
		offCPU: after.offCPU - before.offCPU,
	}
	for i := range after.reals {
		d.reals = append(d.reals, after.reals[i]-before.reals[i])
	}
	return timing{cpu: float64(cpu) / float64(n), wall: float64(wall) / float64(n)}, d, nil
}

func (e *dataPlane) takeSample() ([]byte, error) {
	var s BenchSample
	if err := e.objs.Sample.Lookup(uint32(0), &s); err != nil {
		return nil, err
	}
	if s.Len == 0 {
		return nil, errors.New("the peer copied no frame")
	}
	return slices.Clone(s.Data[:s.Len]), nil
}

// Validity checks. A run that fails one measured the wrong path.

func checkTransmitted(d *delta) error {
	p := d.peer
	if p.Frames != d.n || p.Ok != d.n || p.Bad != 0 {
		return fmt.Errorf("peer received %d frames, %d of the expected shape, %d not (want %d, %d, 0)",
			p.Frames, p.Ok, p.Bad, d.n, d.n)
	}
	if d.offCPU != 0 {
		return fmt.Errorf("%d frames reached the peer on another CPU", d.offCPU)
	}
	return nil
}

func misses(s lb.Stats) uint64 { return s.ConnMissTcpSyn + s.ConnMissTcpOther + s.ConnMissUdp }

func checkBalancerTX(d *delta) error {
	if err := checkTransmitted(d); err != nil {
		return err
	}
	s := d.lb
	if s.XdpTx != d.n || s.XdpPass+s.XdpDrop+s.XdpAborted != 0 {
		return fmt.Errorf("balancer actions: tx %d pass %d drop %d aborted %d, want all %d tx",
			s.XdpTx, s.XdpPass, s.XdpDrop, s.XdpAborted, d.n)
	}
	var sum uint64
	for _, r := range d.reals {
		sum += r
	}
	if sum != d.n {
		return fmt.Errorf("per-real counters add up to %d, want %d", sum, d.n)
	}
	if s.FallbackHit != 0 || s.ConnRepickDown != 0 {
		return fmt.Errorf("fallback hits %d, re-picks %d: the pinned CPU must use its own table", s.FallbackHit, s.ConnRepickDown)
	}
	return nil
}

func realsUsed(d *delta) int {
	n := 0
	for _, r := range d.reals {
		if r > 0 {
			n++
		}
	}
	return n
}

func checkHit(d *delta) error {
	if err := checkBalancerTX(d); err != nil {
		return err
	}
	if d.lb.ConnHit != d.n || misses(d.lb) != 0 {
		return fmt.Errorf("connection table: %d hits, %d misses, want %d hits and no miss", d.lb.ConnHit, misses(d.lb), d.n)
	}
	if u := realsUsed(d); u != 1 {
		return fmt.Errorf("one flow went to %d reals", u)
	}
	return nil
}

// checkFlows allows up to 1% misses: the per-CPU table is set-associative,
// so with 100k flows in its 250k sets a few sets hold more than four, and
// cycling through them in order misses every time (lb's
// BenchmarkConnTableRetention has the rates; the run reports its own).
func checkFlows(d *delta) error {
	if err := checkBalancerTX(d); err != nil {
		return err
	}
	if d.lb.ConnHit+misses(d.lb) != d.n || misses(d.lb) > d.n/100 {
		return fmt.Errorf("connection table: %d hits, %d misses, want %d hits and at most 1%% misses", d.lb.ConnHit, misses(d.lb), d.n)
	}
	if u := realsUsed(d); u != nReals {
		return fmt.Errorf("%d flows went to %d of %d reals", cycledFlows, u, nReals)
	}
	return nil
}

// checkMiss: every packet is a new flow, except those in buffers the kernel
// had just filled from the template (the first use of each page of a test
// run's page pool): they repeat the template's flow, and the peer counts
// them as pristine. At most those may hit.
func checkMiss(d *delta) error {
	if err := checkBalancerTX(d); err != nil {
		return err
	}
	m, h, pristine := misses(d.lb), d.lb.ConnHit, d.peer.Pristine
	if m+h != d.n || h > pristine || m < d.n-pristine {
		return fmt.Errorf("connection table: %d misses, %d hits for %d packets of which %d repeat the template flow; want every other packet to miss",
			m, h, d.n, pristine)
	}
	if d.lb.ConnMissTcpSyn != m {
		return fmt.Errorf("%d misses, %d of them on SYNs: want all", m, d.lb.ConnMissTcpSyn)
	}
	if u := realsUsed(d); u != nReals {
		return fmt.Errorf("new flows went to %d of %d reals", u, nReals)
	}
	return nil
}

func checkBalancerPass(d *delta) error {
	s := d.lb
	if s.XdpPass != d.n || s.XdpTx+s.XdpDrop+s.XdpAborted != 0 {
		return fmt.Errorf("balancer actions: pass %d tx %d drop %d aborted %d, want all %d pass",
			s.XdpPass, s.XdpTx, s.XdpDrop, s.XdpAborted, d.n)
	}
	if s.ConnHit+misses(s) != 0 {
		return fmt.Errorf("non-VIP traffic touched the connection table")
	}
	return checkNothingSent(d)
}

func checkNothingSent(d *delta) error {
	if d.peer.Frames != 0 {
		return fmt.Errorf("the peer received %d frames; a passing program transmits nothing", d.peer.Frames)
	}
	return nil
}

// Sample checks: one transmitted frame compared byte for byte with one
// built independently by package testpkt.

func checkFloorSample(tmpl []byte) func([]byte, *delta) error {
	return func(got []byte, _ *delta) error {
		want := slices.Clone(tmpl)
		copy(want[0:6], tmpl[6:12])
		copy(want[6:12], tmpl[0:6])
		if diff := testpkt.Diff(got, want); diff != "" {
			return fmt.Errorf("floor frame differs:\n%s", diff)
		}
		return nil
	}
}

// checkEncapSample rebuilds what the balancer must have sent for the inner
// frame it carries: the inner packet must be the template with the client
// the peer wrote (checksums included), the outer header Katran-style IPIP
// to one of the VIP's reals, from 172.16.x.y crafted from the client.
func (e *dataPlane) checkEncapSample(wantClient func(netip.Addr, uint16) bool, oneReal bool) func([]byte, *delta) error {
	return func(got []byte, d *delta) error {
		if len(got) < 14+20+20+20 {
			return fmt.Errorf("sampled frame too short: %s", testpkt.Describe(got))
		}
		inner := got[14+20:]
		client := netip.AddrFrom4([4]byte(inner[12:16]))
		sport := binary.BigEndian.Uint16(inner[20:22])
		if !wantClient(client, sport) {
			return fmt.Errorf("sampled frame carries client %s:%d, not one this scenario sends", client, sport)
		}
		real := netip.AddrFrom4([4]byte(got[30:34]))
		idx := slices.Index(e.reals, real)
		if idx < 0 {
			return fmt.Errorf("sampled frame goes to %s, not a real of the VIP", real)
		}
		if oneReal && d.reals[idx] != d.n {
			return fmt.Errorf("sampled frame goes to %s, but that real counted %d of %d packets", real, d.reals[idx], d.n)
		}
		c := client.As4()
		src := netip.AddrFrom4([4]byte{srcPrefix4[0], srcPrefix4[1], c[2] ^ byte(sport), c[3] ^ byte(sport>>8)})
		innerIP := tcpFrame(client, sport, vipKey.Addr, inner[33])[14:]
		outer := testpkt.IPv4{TTL: 64, Proto: testpkt.ProtoIPIP, Src: src, Dst: real}
		want := testpkt.Eth{Dst: gwMAC, Src: lbMAC, Type: testpkt.EtherTypeIPv4}.Frame(outer.Packet(innerIP))
		if diff := testpkt.Diff(got, want); diff != "" {
			return fmt.Errorf("encapsulated frame differs:\n%s", diff)
		}
		return nil
	}
}

func (e *dataPlane) newBalancer(b *testing.B, tableSize int) *lb.Balancer {
	b.Helper()
	bal, err := lb.New(lb.Config{GatewayMAC: gwMAC, ForwardingCPUs: []int{e.cpu}, ConnTableSize: tableSize})
	if err != nil {
		b.Fatalf("lb.New: %v", err)
	}
	b.Cleanup(func() { bal.Close() })
	if err := bal.AddVIP(lb.VIP{Key: vipKey}); err != nil {
		b.Fatalf("AddVIP: %v", err)
	}
	for _, r := range e.reals {
		if err := bal.AddReal(vipKey, lb.Real{Addr: r, Weight: 1}); err != nil {
			b.Fatalf("AddReal %s: %v", r, err)
		}
	}
	return bal
}

func (e *dataPlane) peerConfig(mode uint32, tmpl []byte) *BenchPeerConfig {
	c := &BenchPeerConfig{
		Mode:       mode,
		FrameLen:   uint32(len(tmpl)),
		RealBase:   hostOrder(realBase),
		Nreals:     nReals,
		TmplClient: binary.NativeEndian.Uint32(tmpl[26:30]),
		TmplSport:  binary.NativeEndian.Uint16(tmpl[34:36]),
	}
	copy(c.GwMac[:], gwMAC)
	copy(c.Tmpl[:], tmpl)
	return c
}

type result struct {
	ns    []float64 // thread CPU time per packet, per round
	wall  []float64 // wall-clock time per packet, per round
	ratio []float64 // ns to the same round's floor
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkDataPlane measures the balancer per packet against the floor
// (an XDP program that only swaps MACs and transmits), with
// BPF_PROG_TEST_RUN in live-frames mode: the kernel really transmits every
// XDP_TX'd frame into the lab's veth, and bench_peer on the other end
// restores the buffer (see bench.c). The thread is pinned to one CPU, so
// one per-CPU connection table is used; each balancer has lb's default
// table (1,000,000 entries) on that CPU alone. Scenarios run in
// interleaved rounds after a warm-up round; ns/pkt is the median over the
// rounds of the thread's CPU time per packet (see run), and x-floor the
// median of each round's ratio to that round's floor.
//
// Every run is validated from the programs' own counters, and the
// benchmark fails as invalid otherwise; see the check functions. One
// transmitted frame per scenario is compared byte for byte with one built
// by package testpkt.
func BenchmarkDataPlane(b *testing.B) {
	testutil.RequirePrivileged(b)
	rounds, packets, warmup := *flagRounds, uint32(*flagPackets), uint32(*flagWarmup)
	if rounds < 1 || packets < 10_000 || warmup < 10_000 {
		b.Fatal("need -dataplane.rounds >= 1 and at least 10000 packets per run")
	}

	l := newLab(b)
	cpu, leaveNS := l.enter(b)
	left := false
	leave := func() {
		if !left {
			left = true
			leaveNS()
		}
	}
	defer leave()

	e := &dataPlane{lab: l, cpu: cpu}
	for i := range nReals {
		e.reals = append(e.reals, addrPlus(realBase, uint32(i)))
	}
	if err := LoadBenchObjects(&e.objs, nil); err != nil {
		b.Fatalf("load bench programs: %v", err)
	}
	b.Cleanup(func() { e.objs.Close() })
	peerLink, err := link.AttachXDP(link.XDPOptions{Program: e.objs.BenchPeer, Interface: l.peerIdx})
	if err != nil {
		b.Fatalf("attach the peer program to %s: %v", vethPeer, err)
	}
	b.Cleanup(func() { peerLink.Close() })

	// One balancer per table-using scenario, so none disturbs another's
	// connection table; each has lb's default table (1,000,000 entries) on
	// the pinned CPU alone.
	balHit, balMiss, balFlows := e.newBalancer(b, 0), e.newBalancer(b, *flagMissTbl), e.newBalancer(b, 0)

	established := tcpFrame(clientAddr, clientPort, vipKey.Addr, testpkt.TCPAck)
	syn := tcpFrame(clientAddr, clientPort, vipKey.Addr, testpkt.TCPSyn)
	notVIP := tcpFrame(clientAddr, clientPort, nonVIP, testpkt.TCPAck)

	floorPeer := e.peerConfig(peerSwapped, established)
	hitPeer := e.peerConfig(peerIPIP, established)
	flowsPeer := e.peerConfig(peerIPIP, established)
	flowsPeer.Nflows, flowsPeer.ClientBase, flowsPeer.PortBase = cycledFlows, hostOrder(cycleBase), cyclePort
	missPeer := e.peerConfig(peerIPIP, syn)
	missPeer.Nflows, missPeer.ClientBase, missPeer.PortBase, missPeer.PortStep = cycleSpan, hostOrder(cycleBase), missPort, 1

	isTemplate := func(a netip.Addr, p uint16) bool { return a == clientAddr && p == clientPort }
	inCycle := func(n uint32) func(netip.Addr, uint16) bool {
		return func(a netip.Addr, _ uint16) bool {
			return a.Is4() && hostOrder(a)-hostOrder(cycleBase) < n
		}
	}
	scenarios := []*scenario{
		{id: "a-floor", name: "(a) floor: swap MACs, XDP_TX", prog: e.objs.BenchFloor, frame: established,
			peer: floorPeer, check: checkTransmitted, sample: checkFloorSample(established)},
		{id: "b-hit", name: "(b) balancer, 1 flow, table hit", prog: balHit.Program(), frame: established, bal: balHit,
			peer: hitPeer, check: checkHit, sample: e.checkEncapSample(isTemplate, true)},
		{id: "c-miss", name: "(c) balancer, new flow every packet", prog: balMiss.Program(), frame: syn, bal: balMiss,
			peer: missPeer, check: checkMiss, sample: e.checkEncapSample(inCycle(cycleSpan), false)},
		{id: "d-100k-flows", name: "(d) balancer, 100k flows round-robin", prog: balFlows.Program(), frame: established, bal: balFlows,
			peer: flowsPeer, check: checkFlows, sample: e.checkEncapSample(inCycle(cycledFlows), false)},
		{id: "e-pass", name: "(e) balancer, non-VIP, XDP_PASS", prog: balHit.Program(), frame: notVIP, bal: balHit,
			check: checkBalancerPass},
		{id: "e-bare-pass", name: "(e') bare XDP_PASS program", prog: e.objs.BenchPass, frame: notVIP,
			check: checkNothingSent},
	}

	// Warm-up: fills the tables (the miss scenario's to capacity, so that
	// every measured insert evicts, as on a busy balancer), faults in
	// everything, and checks one transmitted frame of each scenario.
	selected := func(s *scenario) bool {
		return *flagOnly == "" || s.id == "a-floor" || slices.Contains(strings.Split(*flagOnly, ","), s.id)
	}
	for _, s := range scenarios {
		if !selected(s) {
			continue
		}
		req := uint32(0)
		if s.sample != nil {
			req = sampleAt
		}
		_, d, err := e.run(s, warmup, true, req)
		if err != nil {
			b.Fatal(err)
		}
		if s.sample != nil {
			frame, err := e.takeSample()
			if err == nil {
				err = s.sample(frame, d)
			}
			if err != nil {
				b.Fatalf("%s: invalid: %v", s.id, err)
			}
		}
		// In warm-up the tables fill: only the action counters must hold.
		switch {
		case s.bal == nil && s.peer != nil:
			err = checkTransmitted(d)
		case s.bal == nil:
			err = checkNothingSent(d)
		case s.peer == nil:
			err = checkBalancerPass(d)
		default:
			err = checkBalancerTX(d)
		}
		if err != nil {
			b.Fatalf("%s: warm-up invalid: %v", s.id, err)
		}
	}
	var notes = make(map[string][]string) // per scenario, logged with its result
	note := func(id, format string, args ...any) { notes[id] = append(notes[id], fmt.Sprintf(format, args...)) }
	if selected(scenarios[2]) {
		used, maxEntries, err := balMiss.ConnTableUse(cpu)
		if err != nil {
			b.Fatalf("count connection-table entries: %v", err)
		}
		note("c-miss", "connection table of CPU %d after warm-up: %d of %d entries used (%.1f%%; a miss into a full set evicts its least recently used entry)",
			cpu, used, maxEntries, 100*float64(used)/float64(maxEntries))
	}

	// Control: without the restore the balancer sees its own output again.
	if selected(scenarios[1]) {
		_, d, err := e.run(scenarios[1], controlPkts, false, 0)
		if err != nil {
			b.Fatal(err)
		}
		note("b-hit", "control run, peer not restoring: %.1f%% of %d packets forwarded, %.1f%% passed (the balancer's own IPIP output); restoring: 100%% every run",
			100*float64(d.lb.XdpTx)/float64(d.n), d.n, 100*float64(d.lb.XdpPass)/float64(d.n))
	}

	res := make(map[string]*result)
	for _, s := range scenarios {
		res[s.id] = &result{}
	}
	var pristine, flowMisses uint64
	for r := range rounds {
		round := make(map[string]timing)
		// Rotate the order so no scenario always follows the same one.
		for i := range scenarios {
			s := scenarios[(i+r)%len(scenarios)]
			if !selected(s) {
				continue
			}
			t, d, err := e.run(s, packets, true, 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.check(d); err != nil {
				b.Fatalf("%s round %d: invalid run: %v", s.id, r+1, err)
			}
			switch s.id {
			case "c-miss":
				pristine += d.peer.Pristine
			case "d-100k-flows":
				flowMisses += misses(d.lb)
			}
			round[s.id] = t
		}
		for id, t := range round {
			res[id].ns = append(res[id].ns, t.cpu)
			res[id].wall = append(res[id].wall, t.wall)
			res[id].ratio = append(res[id].ratio, t.cpu/round["a-floor"].cpu)
		}
	}
	if id := "d-100k-flows"; selected(scenarioByID(scenarios, id)) {
		total := uint64(rounds) * uint64(packets)
		note(id, "%d of %d packets (%.3f%%) missed the table: flows of sets holding more than four", flowMisses, total, 100*float64(flowMisses)/float64(total))
	}
	if selected(scenarios[2]) {
		total := uint64(rounds) * uint64(packets)
		note("c-miss", "%d of %d packets (%.4f%%) repeated the template flow (buffers fresh from the page pool, may hit); all others missed",
			pristine, total, 100*float64(pristine)/float64(total))
	}

	// Profile: the programs' own run time (kernel BPF stats, which cost
	// something per run, so these runs are not part of the figures).
	prof, err := e.profile(scenarios, selected)
	if err != nil {
		b.Fatal(err)
	}
	leave()

	var passRatio []float64
	if a, c := res["e-pass"].ns, res["e-bare-pass"].ns; len(a) == rounds && len(c) == rounds {
		for i := range a {
			passRatio = append(passRatio, a[i]/c[i])
		}
	}
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "live frames over a veth, CPU %d, medians of %d rounds x %d packets (64-byte TCP), batch %d; own = program alone, by BPF stats\n",
		cpu, rounds, packets, batchSize)
	fmt.Fprintf(&tbl, "  %-38s %7s %6s %7s %8s %8s %8s\n", "scenario", "ns/pkt", "Mpps", "x floor", "own ns", "peer ns", "wall ns")
	for _, s := range scenarios {
		r := res[s.id]
		if len(r.ns) == 0 {
			continue
		}
		ns := median(r.ns)
		peer := "-"
		if s.peer != nil {
			peer = fmt.Sprintf("%.1f", prof[s.id].peer)
		}
		fmt.Fprintf(&tbl, "  %-38s %7.1f %6.2f %7.2f %8.1f %8s %8.1f\n", s.name, ns, 1e3/ns, median(r.ratio), prof[s.id].prog, peer, median(r.wall))
	}
	if passRatio != nil {
		fmt.Fprintf(&tbl, "  balancer pass / bare pass: %.2f", median(passRatio))
	}

	for _, s := range scenarios {
		r := res[s.id]
		if len(r.ns) == 0 {
			continue
		}
		b.Run(s.id, func(b *testing.B) {
			ns := median(r.ns)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(ns, "ns/pkt")
			b.ReportMetric(1e3/ns, "Mpps")
			b.ReportMetric(median(r.ratio), "x-floor")
			if s.id == "e-pass" && passRatio != nil {
				b.ReportMetric(median(passRatio), "x-bare-pass")
			}
			b.Logf("%s: ns/pkt per round %s (wall %s)", s.name, fmtList(r.ns), fmtList(r.wall))
			for _, n := range notes[s.id] {
				b.Log(n)
			}
		})
	}
	// A benchmark's own log shows only with -v once it has sub-benchmarks;
	// a last one carries the table.
	b.Run("summary", func(b *testing.B) {
		b.ReportMetric(0, "ns/op")
		b.Log(tbl.String())
	})
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(s, " ")
}

type progTimes struct{ prog, peer float64 }

func scenarioByID(scenarios []*scenario, id string) *scenario {
	for _, s := range scenarios {
		if s.id == id {
			return s
		}
	}
	return nil
}

// profile runs every selected scenario once more with the kernel's BPF run
// time statistics on and returns each program's own time per run, less
// what the statistics cost: the time they report for bench_pass, which
// does nothing.
func (e *dataPlane) profile(scenarios []*scenario, selected func(*scenario) bool) (map[string]progTimes, error) {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time stats: %w", err)
	}
	defer stats.Close()
	perRun := func(p *ebpf.Program, f func() error) (float64, error) {
		s0, err := p.Stats()
		if err != nil {
			return 0, err
		}
		if err := f(); err != nil {
			return 0, err
		}
		s1, err := p.Stats()
		if err != nil {
			return 0, err
		}
		if n := s1.RunCount - s0.RunCount; n > 0 {
			return float64(s1.Runtime-s0.Runtime) / float64(n), nil
		}
		return 0, nil
	}
	raw := make(map[string]progTimes)
	for _, s := range scenarios {
		if !selected(s) && s.id != "e-bare-pass" { // the baseline is always needed
			continue
		}
		var t progTimes
		t.peer, err = perRun(e.objs.BenchPeer, func() error {
			t.prog, err = perRun(s.prog, func() error {
				_, d, err := e.run(s, profilePkts, true, 0)
				if err == nil {
					err = s.check(d)
				}
				if err != nil {
					return fmt.Errorf("%s: profile run invalid: %w", s.id, err)
				}
				return nil
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		raw[s.id] = t
	}
	zero := raw["e-bare-pass"].prog
	out := make(map[string]progTimes)
	for id, t := range raw {
		if !selected(scenarioByID(scenarios, id)) {
			continue
		}
		t.prog -= zero
		if t.peer > 0 {
			t.peer -= zero
		}
		out[id] = t
	}
	return out, nil
}
