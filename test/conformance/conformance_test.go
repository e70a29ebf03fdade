// Package conformance replays Katran's own packet fixtures against vipcast's
// XDP balancer and TC healthcheck programs (issue 12). The fixtures stay in
// ../shared/conformance; see README.md in this directory for what is
// replayed, how it is checked and where vipcast differs from Katran on
// purpose.
package conformance

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"vipcast/internal/testutil"
	"vipcast/lb"
)

// minCoreCases is the number of `core` cases the shared README promises;
// fewer means the fixture file or the case selection is broken.
const minCoreCases = 27

// requiredBeyond are `beyond` cases that issue 12 makes vipcast's own:
// hashing on the destination port only (Katran's F_HASH_DPORT_ONLY), with
// the outer source computed as Katran computes it for such a VIP. They run
// with the core cases and fail the test like them.
var requiredBeyond = map[string]string{
	"base/19": "dport_only (issue 12)",
	"base/20": "dport_only (issue 12)",
}

// byDesign names the core cases where vipcast deliberately differs from
// Katran. For them the test asserts vipcast's own behaviour instead of
// Katran's expected output, and counts them as differs-by-design.
var byDesign = map[string]struct {
	what  string
	check func(s *suiteRun, c *fixture, act uint32, out []byte, r *result)
}{
	// Katran drops a frame over MAX_PCKT_SIZE (1514) silently. vipcast
	// answers the client with ICMP fragmentation-needed carrying the MTU
	// that fits through the tunnel (tunnel MTU 1500 - 20-byte IPIP header
	// = 1480), so path MTU discovery works instead of a black hole. With
	// NoICMPTooBig it drops like Katran; the check asserts both.
	"base/33": {
		what:  "oversized frame: vipcast answers ICMP fragmentation-needed (next-hop MTU 1480) instead of Katran's silent XDP_DROP",
		check: checkTooBigInsteadOfDrop,
	},
}

// fixture is one Katran case with the fields beyond testutil.FixtureCase.
type fixture struct {
	testutil.FixtureCase
	Index      int       `json:"index"`
	Tags       []string  `json:"tags"`
	Flow       *fixFlow  `json:"flow"`
	VIP        *fixVIP   `json:"vip"`
	VIPReals   []string  `json:"vip_reals"`
	OutputKind string    `json:"output_kind"`
	SkbMark    *uint32   `json:"skb_mark"`
	Checks     fixChecks `json:"checks"`
	required   string    // non-empty: a beyond case run as required
}

type fixFlow struct {
	Src   string `json:"src"`
	Dst   string `json:"dst"`
	Sport uint16 `json:"sport"`
	Dport uint16 `json:"dport"`
	Proto string `json:"proto"`
	ICMP  bool   `json:"icmp"`
}

type fixVIP struct {
	Address string   `json:"address"`
	Port    uint16   `json:"port"`
	Proto   string   `json:"proto"`
	Flags   []string `json:"flags"`
}

// fixChecks are the fixture's decoded expectations (Katran's output).
type fixChecks struct {
	Action            string `json:"action"`
	OuterFamily       string `json:"outer_family"`
	OuterProto        *int   `json:"outer_proto"`
	OuterNextHeader   *int   `json:"outer_next_header"`
	OuterTTL          *int   `json:"outer_ttl"`
	OuterHopLimit     *int   `json:"outer_hop_limit"`
	OuterTOS          *int   `json:"outer_tos"`
	OuterTrafficClass *int   `json:"outer_traffic_class"`
	OuterFlowLabel    *int   `json:"outer_flow_label"`
	OuterID           *int   `json:"outer_id"`
	OuterDF           *bool  `json:"outer_df"`
	OuterSrc          string `json:"outer_src"`
	OuterSrcExpected  string `json:"outer_src_expected"`
	OuterSrcVariant   string `json:"outer_src_variant"`
	OuterDst          string `json:"outer_dst"`
	OuterDstFromMark  string `json:"outer_dst_expected_from_somark"`
	EthDst            string `json:"eth_dst"`
	EthSrc            string `json:"eth_src"`
	// KatranRingMatches is false where Katran's real did not come from
	// its ring (QUIC connection ids, TCP server ids): a feature vipcast
	// does not have picked it.
	KatranRingMatches *bool `json:"katran_ring_prediction_matches"`
	OutputLen         int   `json:"output_len"`
}

// setupFile is the part of katran-setup.json the test programs from.
type setupFile struct {
	Global struct {
		GatewayMAC string         `json:"default_mac_next_hop"`
		LocalMAC   string         `json:"local_mac"`
		SrcV4      string         `json:"katran_src_v4"`
		SrcV6      string         `json:"katran_src_v6"`
		MaxVIPs    int            `json:"max_vips"`
		MaxReals   int            `json:"max_reals"`
		RingSize   uint32         `json:"ch_ring_size"`
		RealIDs    map[string]int `json:"real_ids"`
	} `json:"global"`
	Suites map[string]suiteSetup `json:"suites"`
}

type suiteSetup struct {
	Program string            `json:"program"`
	VIPs    []vipSetup        `json:"vips"`
	HCMarks map[string]string `json:"hc_somark_to_real"`
	HCSrc   *struct {
		V4 string `json:"v4"`
		V6 string `json:"v6"`
	} `json:"hc_src"`
}

type vipSetup struct {
	Address       string   `json:"address"`
	Port          uint16   `json:"port"`
	Proto         string   `json:"proto"`
	Reals         []string `json:"reals"`
	Weights       []uint32 `json:"weights"`
	Flags         []string `json:"flags"`
	Note          string   `json:"note"`
	CIDRPrefixLen int      `json:"cidr_prefix_len"`
}

// katranFlags maps the Katran VIP flags vipcast has to its own; the others
// are Katran extras (beyond) and are left out when a VIP is programmed.
var katranFlags = map[string]lb.VIPFlags{
	"F_HASH_NO_SRC_PORT": lb.FlagNoSrcPort,
	"F_LRU_BYPASS":       lb.FlagLRUBypass,
	"F_HASH_DPORT_ONLY":  lb.FlagDportOnly,
}

// downRealNote is how the setup file records a real that Katran's tester
// marks down for one VIP (base/36's flow-migration VIP).
var downRealNote = regexp.MustCompile(`addDownRealToVipToDownRealsMap\(vip, (\d+)\)`)

func loadSetup(t *testing.T, dir string) *setupFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "katran-setup.json"))
	if err != nil {
		t.Fatalf("katran-setup.json next to the fixtures: %v", err)
	}
	var s setupFile
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("decode katran-setup.json: %v", err)
	}
	if _, ok := s.Suites["base"]; !ok {
		t.Fatal("katran-setup.json has no base suite")
	}
	return &s
}

// loadCases decodes the per-case fields and groups the cases by suite, in
// the fixture file's order (which is Katran's run order).
func loadCases(t *testing.T, fx *testutil.Fixtures) (suites []string, bySuite map[string][]*fixture) {
	t.Helper()
	bySuite = map[string][]*fixture{}
	for _, fc := range fx.Cases {
		c := &fixture{FixtureCase: fc}
		if err := json.Unmarshal(fc.Raw, c); err != nil {
			t.Fatalf("fixture %s: %v", fc.ID, err)
		}
		c.FixtureCase = fc // Unmarshal into the embedded struct drops the decoded frames
		c.required = requiredBeyond[c.ID]
		if _, ok := bySuite[c.Suite]; !ok {
			suites = append(suites, c.Suite)
		}
		bySuite[c.Suite] = append(bySuite[c.Suite], c)
	}
	for _, cs := range bySuite {
		slices.SortStableFunc(cs, func(a, b *fixture) int { return a.Index - b.Index })
	}
	return suites, bySuite
}

// verdict of one case.
type verdict int

const (
	passed verdict = iota
	differs
	failed
	notRun
)

func (v verdict) String() string {
	return [...]string{"pass", "differs-by-design", "FAIL", "not run"}[v]
}

type result struct {
	id       string
	verdict  verdict
	problems []string // what did not hold
	note     string   // the by-design difference
	remark   string   // context for a pass that is weaker than it looks
}

func (r *result) fail(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// finish turns the collected problems into the verdict.
func (r *result) finish() {
	switch {
	case len(r.problems) > 0:
		r.verdict = failed
	case r.note != "":
		r.verdict = differs
	default:
		r.verdict = passed
	}
}

type tally struct {
	passed, differs, failed, skippedBeyond, notRunnable int
}

func TestKatranFixtures(t *testing.T) {
	fx := testutil.KatranFixtures(t)
	testutil.RequirePrivileged(t)
	setup := loadSetup(t, fx.Dir)
	suites, bySuite := loadCases(t, fx)

	t.Run("core", func(t *testing.T) { runCore(t, setup, suites, bySuite) })
	t.Run("beyond", func(t *testing.T) { reportBeyond(t, setup, suites, bySuite) })
}

// runCore replays every core case (and the required beyond ones) suite by
// suite, in order, one balancer or healthcheck program per suite.
func runCore(t *testing.T, setup *setupFile, suites []string, bySuite map[string][]*fixture) {
	tallies := map[string]*tally{}
	required := &tally{}
	coreTotal, coreRan := 0, 0
	var requiredRan []string
	var results []result

	for _, suite := range suites {
		tl := &tally{}
		tallies[suite] = tl
		var cases []*fixture
		for _, c := range bySuite[suite] {
			switch {
			case c.Applicability == "core":
				coreTotal++
				cases = append(cases, c)
			case c.required != "":
				cases = append(cases, c)
			default:
				tl.skippedBeyond++
			}
		}
		if len(cases) == 0 {
			continue
		}
		s, err := newSuiteRun(setup, suite, cases[0].Program, lb.Config{})
		if err != nil {
			t.Errorf("suite %s: %v", suite, err)
			tl.failed += len(cases)
			continue
		}
		for _, c := range cases {
			ran := false
			var r result
			t.Run(c.ID, func(t *testing.T) {
				r = s.evaluate(c)
				ran = true
				if r.note != "" && r.verdict == differs {
					t.Logf("%s: differs by design: %s", c.ID, r.note)
				}
				for _, p := range r.problems {
					t.Errorf("%s (%s): %s", c.ID, c.Description, p)
				}
			})
			if !ran {
				// Filtered out with -run, or skipped: either way the
				// case did not run, which a complete replay forbids.
				r = result{id: c.ID, verdict: notRun}
			}
			results = append(results, r)
			tl := tl
			if c.required != "" {
				tl = required // counted apart: the core figures stay Katran's core
			}
			switch r.verdict {
			case passed:
				tl.passed++
			case differs:
				tl.differs++
			case failed:
				tl.failed++
			case notRun:
				t.Errorf("%s did not run; every core and required case must", c.ID)
			}
			if r.verdict != notRun {
				if c.Applicability == "core" {
					coreRan++
				} else {
					requiredRan = append(requiredRan, c.ID)
				}
			}
		}
		s.close()
	}

	t.Logf("Katran fixtures, core cases, and the beyond cases issue 12 requires (%s):\n%s",
		strings.Join(slices.Sorted(maps.Keys(requiredBeyond)), ", "), coreTable(suites, tallies, required))
	var lines []string
	for _, r := range results {
		line := fmt.Sprintf("  %-10s %s", r.id, r.verdict)
		switch {
		case r.verdict == failed && len(r.problems) > 0:
			first, _, _ := strings.Cut(r.problems[0], "\n")
			line += ": " + first
		case r.note != "":
			line += ": " + r.note
		}
		lines = append(lines, line)
	}
	t.Logf("per case:\n%s", strings.Join(lines, "\n"))

	if coreTotal < minCoreCases {
		t.Errorf("the fixture file has %d core cases, want at least %d", coreTotal, minCoreCases)
	}
	if coreRan < minCoreCases {
		t.Errorf("%d core cases ran, want at least %d (and all %d of the file)", coreRan, minCoreCases, coreTotal)
	}
	if coreRan != coreTotal {
		t.Errorf("%d of %d core cases ran: a core case was skipped", coreRan, coreTotal)
	}
	if len(requiredRan) != len(requiredBeyond) {
		t.Errorf("required beyond cases that ran: %v, want all of %v", requiredRan, slices.Sorted(maps.Keys(requiredBeyond)))
	}
}

// coreTable is the per-suite summary. skipped-beyond counts the beyond
// cases left out of this run (reported by the beyond subtest instead);
// the required ones have a row of their own.
func coreTable(suites []string, tallies map[string]*tally, required *tally) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "suite\tpassed\tdiffers-by-design\tfailed\tskipped-beyond\t")
	var sum tally
	for _, s := range suites {
		tl := tallies[s]
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t\n", s, tl.passed, tl.differs, tl.failed, tl.skippedBeyond)
		sum.passed += tl.passed
		sum.differs += tl.differs
		sum.failed += tl.failed
		sum.skippedBeyond += tl.skippedBeyond
	}
	fmt.Fprintf(w, "core total\t%d\t%d\t%d\t%d\t\n", sum.passed, sum.differs, sum.failed, sum.skippedBeyond)
	fmt.Fprintf(w, "required beyond (dport_only)\t%d\t%d\t%d\t-\t\n", required.passed, required.differs, required.failed)
	w.Flush()
	return b.String()
}

// runnableKinds are the outputs vipcast can produce. GUE encapsulation and
// Katran's decapsulation paths are features vipcast does not have.
var runnableKinds = map[string]bool{
	"unchanged": true, "ipip4": true, "ip4ip6": true, "ip6ip6": true,
	"icmp_echo_reply": true, "icmp6_echo_reply": true,
	"icmp4_generated": true, "icmp6_generated": true,
}

// whyNotRunnable says why vipcast cannot run a case at all, or "".
func whyNotRunnable(c *fixture) string {
	switch c.Program {
	case "balancer", "healthcheck":
	case "decap":
		return "Katran's XDP decap program (vipcast's real-side decap is issue 6, not yet in bpf/)"
	default:
		return "Katran's " + c.Program + " program has no vipcast counterpart"
	}
	if !runnableKinds[c.OutputKind] {
		return "output is " + c.OutputKind + " (needs " + strings.Join(c.BeyondReasons, ", ") + ")"
	}
	return ""
}

// reportBeyond runs the beyond cases vipcast can run and reports which of
// them pass. It never fails the test: these are Katran features vipcast
// does not promise (except the required ones, asserted in core).
func reportBeyond(t *testing.T, setup *setupFile, suites []string, bySuite map[string][]*fixture) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "suite\tbeyond\tran\tpassed\tdiffers-by-design\tfailed\tnot-runnable\t")
	var details []string
	var passing []string
	var sum tally
	total, ran := 0, 0
	for _, suite := range suites {
		var beyond int
		for _, c := range bySuite[suite] {
			if c.Applicability == "beyond" {
				beyond++
			}
		}
		if beyond == 0 {
			continue
		}
		tl := tally{}
		var s *suiteRun
		var setupErr error
		for _, c := range bySuite[suite] {
			// Every runnable case of the suite goes through, in order, so
			// that the connection table holds what Katran's did; only the
			// beyond ones are reported here.
			why := whyNotRunnable(c)
			if why != "" {
				if c.Applicability == "beyond" {
					tl.notRunnable++
					details = append(details, fmt.Sprintf("  %-28s not runnable: %s", c.ID, why))
				}
				continue
			}
			if s == nil && setupErr == nil {
				s, setupErr = newSuiteRun(setup, suite, c.Program, lb.Config{})
				if setupErr != nil {
					t.Logf("suite %s: cannot program vipcast: %v", suite, setupErr)
				}
			}
			if setupErr != nil {
				if c.Applicability == "beyond" {
					tl.notRunnable++
				}
				continue
			}
			r := s.evaluate(c)
			if c.Applicability != "beyond" {
				continue
			}
			line := fmt.Sprintf("  %-28s %s", c.ID, r.verdict)
			switch r.verdict {
			case passed:
				tl.passed++
				passing = append(passing, c.ID)
				if r.remark != "" {
					line += ": " + r.remark
				}
			case differs:
				tl.differs++
				passing = append(passing, c.ID+" (differs by design)")
				line += ": " + r.note
			default:
				tl.failed++
				line += ": " + strings.Join(r.problems, "; ")
			}
			if c.required != "" {
				line += " [required: " + c.required + ", asserted in core]"
			}
			details = append(details, line)
		}
		if s != nil {
			s.close()
		}
		n := tl.passed + tl.differs + tl.failed
		total += beyond
		ran += n
		sum.passed += tl.passed
		sum.differs += tl.differs
		sum.failed += tl.failed
		sum.notRunnable += tl.notRunnable
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", suite, beyond, n, tl.passed, tl.differs, tl.failed, tl.notRunnable)
	}
	fmt.Fprintf(w, "total\t%d\t%d\t%d\t%d\t%d\t%d\t\n", total, ran, sum.passed, sum.differs, sum.failed, sum.notRunnable)
	w.Flush()
	t.Logf("Katran fixtures, beyond cases (reported, never failing):\n%s", b.String())
	t.Logf("beyond cases vipcast passes: %s", strings.Join(passing, ", "))
	t.Logf("per beyond case:\n%s", strings.Join(details, "\n"))
}

// suiteRun is one suite's program and its state: one connection table for
// all of the suite's cases, as Katran's tester has.
type suiteRun struct {
	name    string
	setup   *setupFile
	gateway net.HardwareAddr
	cpu     *pinnedCPU

	bal     *lb.Balancer
	vips    map[lb.VIPKey]vipSetup     // as programmed
	down    map[lb.VIPKey][]netip.Addr // reals marked down per VIP
	placed  map[string]netip.Addr      // flow (as the VIP hashes it) -> real
	quiet   *lb.Balancer               // NoICMPTooBig twin, made on demand
	hc      *lb.Healthcheck
	hcMarks map[uint32]netip.Addr
	closers []func() error
}

func newSuiteRun(setup *setupFile, suite, program string, cfg lb.Config) (*suiteRun, error) {
	gw, err := net.ParseMAC(setup.Global.GatewayMAC)
	if err != nil {
		return nil, fmt.Errorf("gateway mac: %w", err)
	}
	s := &suiteRun{name: suite, setup: setup, gateway: gw, placed: map[string]netip.Addr{}}
	if s.cpu, err = newPinnedCPU(); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() error { s.cpu.close(); return nil })
	switch program {
	case "balancer":
		s.bal, err = s.programBalancer(cfg)
	case "healthcheck":
		err = s.programHealthcheck()
	default:
		err = fmt.Errorf("program %q has no vipcast counterpart", program)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *suiteRun) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
	s.closers = nil
}

// suiteVIPs are the VIPs Katran's tester programs for a suite; suites that
// start from "base state" list none of their own.
func (s *suiteRun) suiteVIPs() []vipSetup {
	if v := s.setup.Suites[s.name].VIPs; v != nil {
		return v
	}
	return s.setup.Suites["base"].VIPs
}

// programBalancer loads a balancer and programs it as Katran's tester
// programs Katran: same VIPs in the same order, same reals and weights, the
// gateway MAC, Katran's ring size and table limits. Flags vipcast does not
// have are left out; CIDR VIPs are left out.
func (s *suiteRun) programBalancer(cfg lb.Config) (*lb.Balancer, error) {
	g := s.setup.Global
	cfg.GatewayMAC = s.gateway
	cfg.MaxVIPs = g.MaxVIPs
	cfg.MaxReals = g.MaxReals
	// The table size is invisible on the wire; a small one keeps each
	// suite's balancer cheap (Katran's tester uses its default).
	cfg.ConnTableSize = 1 << 16
	cfg.FallbackTableSize = 1024
	b, err := lb.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("lb.New: %w", err)
	}
	s.closers = append(s.closers, b.Close)
	byID := map[int]string{}
	for addr, id := range g.RealIDs {
		byID[id] = addr
	}
	if s.vips == nil {
		s.vips = map[lb.VIPKey]vipSetup{}
		s.down = map[lb.VIPKey][]netip.Addr{}
	}
	for _, v := range s.suiteVIPs() {
		if v.CIDRPrefixLen != 0 {
			continue // CIDR VIPs are beyond vipcast
		}
		key, err := vipKey(v.Address, v.Port, v.Proto)
		if err != nil {
			return nil, err
		}
		var flags lb.VIPFlags
		for _, f := range v.Flags {
			flags |= katranFlags[f]
		}
		if err := b.AddVIP(lb.VIP{Key: key, Flags: flags, RingSize: g.RingSize}); err != nil {
			return nil, err
		}
		s.vips[key] = v
		for i, r := range v.Reals {
			addr, err := netip.ParseAddr(r)
			if err != nil {
				return nil, fmt.Errorf("vip %s: real %q: %w", key, r, err)
			}
			weight := uint32(1)
			if i < len(v.Weights) {
				weight = v.Weights[i]
			}
			if err := b.AddReal(key, lb.Real{Addr: addr, Weight: weight}); err != nil {
				return nil, err
			}
		}
		// Katran's tester marks a real down for this VIP; vipcast's Down
		// state is the closest thing: out of the ring, table entries ignored.
		if m := downRealNote.FindStringSubmatch(v.Note); m != nil {
			var id int
			fmt.Sscan(m[1], &id)
			addr, err := netip.ParseAddr(byID[id])
			if err != nil {
				return nil, fmt.Errorf("vip %s: down real id %d is not in real_ids", key, id)
			}
			if err := b.UpdateReal(key, lb.Real{Addr: addr, Weight: 1, State: lb.Down}); err != nil {
				return nil, err
			}
			s.down[key] = append(s.down[key], addr)
		}
	}
	return b, nil
}

// programHealthcheck loads the healthcheck program with Katran's somarks,
// sources and MACs. Redirect mode gives Katran's TC_ACT_REDIRECT.
func (s *suiteRun) programHealthcheck() error {
	g := s.setup.Global
	src4, src6 := g.SrcV4, g.SrcV6
	if hs := s.setup.Suites[s.name].HCSrc; hs != nil {
		src4, src6 = hs.V4, hs.V6
	}
	local, err := net.ParseMAC(g.LocalMAC)
	if err != nil {
		return fmt.Errorf("local mac: %w", err)
	}
	cfg := lb.HealthcheckConfig{LocalMAC: local, GatewayMAC: s.gateway, RedirectIfindex: 1}
	if cfg.SourceV4, err = netip.ParseAddr(src4); err != nil {
		return err
	}
	if cfg.SourceV6, err = netip.ParseAddr(src6); err != nil {
		return err
	}
	h, err := lb.NewHealthcheck(cfg)
	if err != nil {
		return err
	}
	s.hc = h
	s.closers = append(s.closers, h.Close)
	s.hcMarks = map[uint32]netip.Addr{}
	marks := s.setup.Suites[s.name].HCMarks
	for _, m := range slices.Sorted(maps.Keys(marks)) {
		var mark uint32
		if _, err := fmt.Sscan(m, &mark); err != nil {
			return fmt.Errorf("somark %q: %w", m, err)
		}
		real, err := netip.ParseAddr(marks[m])
		if err != nil {
			return err
		}
		if err := h.AddMark(mark, real); err != nil {
			return err
		}
		s.hcMarks[mark] = real
	}
	return nil
}

// quietTwin is a balancer programmed like this suite's but with
// NoICMPTooBig: Katran's behaviour for oversized frames.
func (s *suiteRun) quietTwin() (*lb.Balancer, error) {
	if s.quiet != nil {
		return s.quiet, nil
	}
	twin := &suiteRun{name: s.name, setup: s.setup, gateway: s.gateway}
	b, err := twin.programBalancer(lb.Config{NoICMPTooBig: true})
	if err != nil {
		twin.close()
		return nil, err
	}
	s.closers = append(s.closers, func() error { twin.close(); return nil })
	s.quiet = b
	return b, nil
}

func vipKey(addr string, port uint16, proto string) (lb.VIPKey, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return lb.VIPKey{}, fmt.Errorf("vip address %q: %w", addr, err)
	}
	p, err := lb.ParseProto(proto)
	if err != nil {
		return lb.VIPKey{}, err
	}
	return lb.VIPKey{Addr: a, Port: port, Proto: p}, nil
}

// runXDP passes one frame through an XDP program (repeat = 1: a second run
// would see the rewritten frame) on the suite's pinned CPU.
func (s *suiteRun) runXDP(prog *ebpf.Program, in []byte) (uint32, []byte, error) {
	return s.cpu.run(prog, &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256), Repeat: 1})
}

// runTC runs the healthcheck program with skb->mark set. The context is
// the head of struct __sk_buff: len, pkt_type (must be zero), mark.
func (s *suiteRun) runTC(in []byte, mark uint32) (uint32, []byte, error) {
	ctx := make([]byte, 12)
	nativeEndian.PutUint32(ctx[8:], mark)
	return s.cpu.run(s.hc.Program(), &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256), Context: ctx, Repeat: 1})
}

// pinnedCPU runs programs from one OS thread bound to one CPU. The balancer
// keeps a connection table per CPU, so a suite whose runs wandered between
// CPUs would not see its own earlier flows (Katran's "LRU hit" cases).
type pinnedCPU struct {
	work chan func()
}

func newPinnedCPU() (*pinnedCPU, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	cpu := -1
	for i := range 1024 {
		if allowed.IsSet(i) {
			cpu = i
			break
		}
	}
	if cpu < 0 {
		return nil, fmt.Errorf("no CPU in this thread's affinity mask")
	}
	p := &pinnedCPU{work: make(chan func())}
	ready := make(chan error)
	go func() {
		// Never unlocked: when the goroutine ends, its thread (and the
		// affinity set on it) ends too instead of returning to the pool.
		runtime.LockOSThread()
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			ready <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
			return
		}
		ready <- nil
		for f := range p.work {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pinnedCPU) run(prog *ebpf.Program, opts *ebpf.RunOptions) (uint32, []byte, error) {
	var (
		ret uint32
		err error
	)
	done := make(chan struct{})
	p.work <- func() {
		ret, err = prog.Run(opts)
		close(done)
	}
	<-done
	if err != nil {
		return 0, nil, fmt.Errorf("BPF_PROG_TEST_RUN: %w", err)
	}
	return ret, opts.DataOut, nil
}

func (p *pinnedCPU) close() { close(p.work) }
