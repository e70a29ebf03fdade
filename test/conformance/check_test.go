package conformance

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"

	"vipcast/internal/testpkt"
	"vipcast/lb"
)

var nativeEndian = binary.NativeEndian

// Return codes by name, as the fixtures spell them.
var actionCodes = map[string]uint32{
	"XDP_ABORTED": 0, "XDP_DROP": 1, "XDP_PASS": 2, "XDP_TX": 3, "XDP_REDIRECT": 4,
	"TC_ACT_UNSPEC": math.MaxUint32, // -1
	"TC_ACT_OK":     0, "TC_ACT_SHOT": 2, "TC_ACT_PIPE": 3, "TC_ACT_REDIRECT": 7,
}

func actionName(program string, code uint32) string {
	prefix := "XDP_"
	if program == "healthcheck" {
		prefix = "TC_ACT_"
	}
	for name, c := range actionCodes {
		if c == code && strings.HasPrefix(name, prefix) {
			return name
		}
	}
	return fmt.Sprintf("%s%d", prefix, int32(code))
}

// Constants of the wire format both Katran and vipcast follow (the shared
// README's table of hash-independent rules).
const (
	outerTTL        = 64
	tunnelMTU       = 1500 // vipcast's default Config.TunnelMTU
	tooBigQuoteV4   = 84
	tooBigQuoteV6   = 248
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	ipv4HeaderLen   = 20
	ipv6HeaderLen   = 40
	ethHeaderLen    = 14
	ipv4FlagDF      = 0x4000
	ipv4FragmentMsk = 0x3fff // MF and offset
)

var (
	sourcePrefixV4 = [2]byte{172, 16}                         // 172.16.0.0/16
	sourcePrefixV6 = [12]byte{0x01, 0x00, 10: 0x00, 11: 0x00} // 100::/96
)

// evaluate runs one case through the suite's program and checks the result.
func (s *suiteRun) evaluate(c *fixture) (r result) {
	r.id = c.ID
	defer r.finish() // on the named result, so every return is judged
	var (
		act uint32
		out []byte
		err error
	)
	var before lb.Stats
	switch c.Program {
	case "balancer":
		if s.bal == nil {
			r.fail("no balancer programmed for suite %s", s.name)
			return r
		}
		if before, err = s.bal.Stats(); err != nil {
			r.fail("read stats: %v", err)
			return r
		}
		act, out, err = s.runXDP(s.bal.Program(), c.Input)
	case "healthcheck":
		if s.hc == nil {
			r.fail("no healthcheck program for suite %s", s.name)
			return r
		}
		var mark uint32
		if c.SkbMark != nil {
			mark = *c.SkbMark
		}
		act, out, err = s.runTC(c.Input, mark)
	default:
		r.fail("program %q has no vipcast counterpart", c.Program)
		return r
	}
	if err != nil {
		r.fail("%v", err)
		return r
	}

	if d, ok := byDesign[c.ID]; ok {
		r.note = d.what
		d.check(s, c, act, out, &r)
		return r
	}

	want, ok := actionCodes[c.ExpectedAction]
	if !ok {
		r.fail("fixture action %q unknown to the test", c.ExpectedAction)
		return r
	}
	if act != want {
		r.fail("action %s, Katran %s; output: %s", actionName(c.Program, act), c.ExpectedAction, testpkt.Describe(out))
		return r
	}

	switch c.OutputKind {
	case "unchanged":
		if d := testpkt.Diff(out, c.Input); d != "" {
			r.fail("frame changed, Katran leaves it untouched:\n%s", d)
		}
	case "ipip4", "ip4ip6", "ip6ip6":
		if c.Program == "healthcheck" {
			s.checkHealthcheckEncap(c, out, &r)
		} else {
			s.checkEncap(c, out, &r)
		}
	case "icmp_echo_reply", "icmp6_echo_reply":
		// Both set TTL/hop limit 64 and patch the ICMP checksum
		// incrementally, so the replies must agree byte for byte.
		if d := testpkt.Diff(out, c.Output); d != "" {
			why := ""
			if !icmpChecksumVerifies(out) {
				why = fmt.Sprintf(" (vipcast's ICMP checksum %#04x does not verify; Katran's %#04x does)",
					icmpChecksum(out), icmpChecksum(c.Output))
			}
			r.fail("echo reply differs from Katran's%s:\n%s", why, d)
		}
		s.checkEchoToHost(c, &r)
	case "icmp4_generated", "icmp6_generated":
		s.checkTooBig(c, out, &r)
	default:
		r.fail("output kind %q: nothing in vipcast to compare it with", c.OutputKind)
	}

	if want, ok := lruExpectation(c); ok && c.Program == "balancer" {
		after, err := s.bal.Stats()
		if err != nil {
			r.fail("read stats: %v", err)
		} else if hits := (after.ConnHit + after.FallbackHit) - (before.ConnHit + before.FallbackHit); hits != want {
			r.fail("connection table hits moved by %d, want %d (Katran's case says %q)", hits, want, c.Description)
		}
	}
	return r
}

// lruExpectation reads from a case's description whether Katran found the
// flow in its connection table ("LRU hit": one hit) or not ("LRU miss").
func lruExpectation(c *fixture) (uint64, bool) {
	d := strings.ToLower(c.Description)
	switch {
	case strings.Contains(d, "lru hit"):
		return 1, true
	case strings.Contains(d, "lru miss"):
		return 0, true
	}
	return 0, false
}

// checkEncap checks a balancer encapsulation by the hash-independent rules,
// then byte for byte against Katran's frame with only the outer
// destination (the hash-dependent real) replaced by vipcast's.
func (s *suiteRun) checkEncap(c *fixture, out []byte, r *result) {
	in := c.Input
	ch := c.Checks
	if len(in) < ethHeaderLen || c.Flow == nil || c.VIP == nil {
		r.fail("fixture lacks the input frame, flow or VIP")
		return
	}
	inner := in[ethHeaderLen:]
	innerTOS := tosOf(in)
	outerV6 := ch.OuterFamily == "ipv6"
	hdr := ipv4HeaderLen
	typ := uint16(etherTypeIPv4)
	if outerV6 {
		hdr, typ = ipv6HeaderLen, etherTypeIPv6
	}
	if len(out) >= ethHeaderLen && binary.BigEndian.Uint16(out[12:14]) != typ {
		r.fail("outer header is not %s like Katran's (to %s%s): %s", ch.OuterFamily, ch.OuterDst,
			katranRealReason(c), testpkt.Describe(out))
		return
	}
	if len(out) != ethHeaderLen+hdr+len(inner) {
		r.fail("frame length %d, want %d (Ethernet + %d-byte outer header + the %d-byte input packet): %s",
			len(out), ethHeaderLen+hdr+len(inner), hdr, len(inner), testpkt.Describe(out))
		return
	}

	// Ethernet: to the gateway, from the MAC the input was sent to.
	if !bytes.Equal(out[0:6], s.gateway) || net.HardwareAddr(out[0:6]).String() != ch.EthDst {
		r.fail("Ethernet dst %s, want the gateway %s", net.HardwareAddr(out[0:6]), s.gateway)
	}
	if !bytes.Equal(out[6:12], in[0:6]) || net.HardwareAddr(out[6:12]).String() != ch.EthSrc {
		r.fail("Ethernet src %s, want the input frame's dst %s", net.HardwareAddr(out[6:12]), net.HardwareAddr(in[0:6]))
	}
	if got := binary.BigEndian.Uint16(out[12:14]); got != typ {
		r.fail("EtherType %#04x, want %#04x", got, typ)
	}
	if !bytes.Equal(out[ethHeaderLen+hdr:], inner) {
		r.fail("inner packet is not the input IP packet byte for byte:\n%s",
			testpkt.Diff(out[ethHeaderLen+hdr:], inner))
	}

	flowSrc, err1 := netip.ParseAddr(c.Flow.Src)
	flowDst, err2 := netip.ParseAddr(c.Flow.Dst)
	if err1 != nil || err2 != nil {
		r.fail("fixture flow addresses %q, %q", c.Flow.Src, c.Flow.Dst)
		return
	}
	wantSrc, err := katranOuterSource(flowSrc, c.Flow.Sport, outerV6, ch.OuterSrcVariant)
	if err != nil {
		r.fail("%v", err)
		return
	}
	// The formula, worked out here, must reproduce Katran's own output
	// before it can judge vipcast's.
	if wantSrc.String() != ch.OuterSrcExpected || wantSrc.String() != ch.OuterSrc {
		r.fail("test formula gives outer source %s, the fixture says %s (expected %s)", wantSrc, ch.OuterSrc, ch.OuterSrcExpected)
	}

	o := out[ethHeaderLen : ethHeaderLen+hdr]
	var gotSrc, gotDst netip.Addr
	if outerV6 {
		word := binary.BigEndian.Uint32(o[0:4])
		if v := word >> 28; v != 6 {
			r.fail("outer IP version %d, want 6", v)
		}
		if tc := uint8(word >> 20); tc != innerTOS || !eqInt(ch.OuterTrafficClass, int(tc)) {
			r.fail("outer traffic class %#02x, want the inner's %#02x", tc, innerTOS)
		}
		if fl := word & 0xfffff; fl != 0 || !eqInt(ch.OuterFlowLabel, int(fl)) {
			r.fail("outer flow label %#x, want 0", fl)
		}
		if pl := binary.BigEndian.Uint16(o[4:6]); int(pl) != len(inner) {
			r.fail("outer payload length %d, want %d", pl, len(inner))
		}
		wantNH := 41
		if in[12] == 0x08 {
			wantNH = 4
		}
		if nh := int(o[6]); nh != wantNH || !eqInt(ch.OuterNextHeader, nh) {
			r.fail("outer next header %d, want %d", nh, wantNH)
		}
		if o[7] != outerTTL || !eqInt(ch.OuterHopLimit, int(o[7])) {
			r.fail("outer hop limit %d, want %d", o[7], outerTTL)
		}
		gotSrc = netip.AddrFrom16([16]byte(o[8:24]))
		gotDst = netip.AddrFrom16([16]byte(o[24:40]))
	} else {
		if o[0] != 0x45 {
			r.fail("outer version/IHL %#02x, want 0x45", o[0])
		}
		if o[1] != innerTOS || !eqInt(ch.OuterTOS, int(o[1])) {
			r.fail("outer TOS %#02x, want the inner's %#02x", o[1], innerTOS)
		}
		if tl := binary.BigEndian.Uint16(o[2:4]); int(tl) != hdr+len(inner) {
			r.fail("outer total length %d, want %d", tl, hdr+len(inner))
		}
		if id := binary.BigEndian.Uint16(o[4:6]); id != 0 || !eqInt(ch.OuterID, int(id)) {
			r.fail("outer IPv4 id %d, want 0", id)
		}
		ff := binary.BigEndian.Uint16(o[6:8])
		if ff&ipv4FlagDF != 0 || (ch.OuterDF != nil && *ch.OuterDF) {
			r.fail("outer DF set, Katran leaves it clear")
		}
		if ff&ipv4FragmentMsk != 0 {
			r.fail("outer header is a fragment (flags/offset %#04x)", ff)
		}
		if o[8] != outerTTL || !eqInt(ch.OuterTTL, int(o[8])) {
			r.fail("outer TTL %d, want %d", o[8], outerTTL)
		}
		if o[9] != 4 || !eqInt(ch.OuterProto, int(o[9])) {
			r.fail("outer protocol %d, want 4 (IPIP)", o[9])
		}
		if testpkt.Checksum(o) != 0 {
			r.fail("outer IPv4 header checksum %#04x does not verify", binary.BigEndian.Uint16(o[10:12]))
		}
		gotSrc = netip.AddrFrom4([4]byte(o[12:16]))
		gotDst = netip.AddrFrom4([4]byte(o[16:20]))
	}

	if gotSrc != wantSrc {
		r.fail("outer source %s, want %s (Katran's rule, variant %q, for %s:%d)", gotSrc, wantSrc, ch.OuterSrcVariant, flowSrc, c.Flow.Sport)
	}
	s.checkReal(c, flowSrc, flowDst, gotDst, r)

	// Everything but the real, byte for byte: Katran's frame with the outer
	// destination set to vipcast's choice (and the IPv4 checksum redone).
	if len(r.problems) == 0 {
		want := slices.Clone(c.Output)
		if len(want) == len(out) {
			if outerV6 {
				d := gotDst.As16()
				copy(want[ethHeaderLen+24:ethHeaderLen+40], d[:])
			} else {
				d := gotDst.As4()
				oh := want[ethHeaderLen : ethHeaderLen+ipv4HeaderLen]
				copy(oh[16:20], d[:])
				oh[10], oh[11] = 0, 0
				binary.BigEndian.PutUint16(oh[10:12], testpkt.Checksum(oh))
			}
		}
		if d := testpkt.Diff(out, want); d != "" {
			r.fail("frame differs from Katran's (outer dst set to vipcast's real %s):\n%s", gotDst, d)
		}
	}
}

// checkReal checks the real a flow went to: one of the VIP's reals and not
// one marked down (Katran's rule); where Katran's real came from a feature
// vipcast lacks, exactly Katran's real; and vipcast's own consistency: the
// real its ring names for the flow (lb.RealFor), and the same real for
// every packet the VIP hashes alike (connection table, dport_only).
func (s *suiteRun) checkReal(c *fixture, src, dst, got netip.Addr, r *result) {
	ch := c.Checks
	var reals []netip.Addr
	for _, a := range c.VIPReals {
		if p, err := netip.ParseAddr(a); err == nil {
			reals = append(reals, p)
		}
	}
	if !slices.Contains(reals, got) {
		r.fail("outer destination %s is not one of the VIP's reals %v", got, c.VIPReals)
	}
	if ch.KatranRingMatches != nil && !*ch.KatranRingMatches {
		if got.String() != ch.OuterDst {
			r.fail("outer destination %s; Katran sends this packet to %s%s", got, ch.OuterDst, katranRealReason(c))
		} else {
			r.remark = "same real as Katran only because vipcast's ring (or its table entry) picked " + got.String() +
				" for this flow; Katran chose it" + katranRealReason(c)
		}
	}
	key, err := vipKey(c.VIP.Address, c.VIP.Port, c.VIP.Proto)
	if err != nil {
		r.fail("%v", err)
		return
	}
	if slices.Contains(s.down[key], got) {
		r.fail("outer destination %s is a real marked down for VIP %s", got, key)
	}
	v, ok := s.vips[key]
	if !ok {
		r.fail("VIP %s was not programmed", key)
		return
	}
	var flags lb.VIPFlags
	for _, f := range v.Flags {
		flags |= katranFlags[f]
	}
	flow := lb.Flow{
		Src:   netip.AddrPortFrom(src, c.Flow.Sport),
		Dst:   netip.AddrPortFrom(dst, c.Flow.Dport),
		Proto: key.Proto,
	}
	if ring, err := s.bal.RealFor(key, flow); err != nil {
		r.fail("RealFor %s: %v", key, err)
	} else if ring != got {
		r.fail("outer destination %s, but vipcast's ring (lb.RealFor) names %s for this flow", got, ring)
	}
	// The flow as the VIP hashes it: a dport_only VIP puts every client of
	// a port on one real.
	placement := fmt.Sprintf("%s|%s:%d>%d", key, src, c.Flow.Sport, c.Flow.Dport)
	if flags&lb.FlagDportOnly != 0 {
		placement = fmt.Sprintf("%s|*>%d", key, c.Flow.Dport)
	}
	if prev, ok := s.placed[placement]; ok && prev != got {
		r.fail("went to %s, an earlier packet the VIP hashes alike (%s) went to %s", got, placement, prev)
	}
	s.placed[placement] = got
}

// katranRealReason explains a real Katran did not take from its ring.
func katranRealReason(c *fixture) string {
	if ch := c.Checks; ch.KatranRingMatches != nil && !*ch.KatranRingMatches {
		return " by " + strings.Join(c.BeyondReasons, "/") + " routing, not its ring"
	}
	return ""
}

// checkHealthcheckEncap compares a healthcheck encapsulation with Katran's
// byte for byte: the real comes from the mark, not from a hash.
func (s *suiteRun) checkHealthcheckEncap(c *fixture, out []byte, r *result) {
	if c.SkbMark != nil {
		if real, ok := s.hcMarks[*c.SkbMark]; !ok || real.String() != c.Checks.OuterDstFromMark {
			r.fail("somark %d maps to %s in the setup, the fixture expects %s", *c.SkbMark, real, c.Checks.OuterDstFromMark)
		}
	}
	if d := testpkt.Diff(out, c.Output); d != "" {
		r.fail("healthcheck encapsulation differs from Katran's:\n%s", d)
	}
}

// checkEchoToHost sends the case's echo request to an address that is not
// a VIP. Katran answers ICMP echo for any destination; vipcast answers only
// for its VIPs and leaves the rest to the kernel (a deliberate difference
// no fixture exercises, so it is checked here, next to the echo cases).
func (s *suiteRun) checkEchoToHost(c *fixture, r *result) {
	in := slices.Clone(c.Input)
	ip := in[ethHeaderLen:]
	if binary.BigEndian.Uint16(in[12:14]) == etherTypeIPv4 {
		host := netip.MustParseAddr("192.0.2.2").As4()
		copy(ip[16:20], host[:])
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], testpkt.Checksum(ip[:ipv4HeaderLen]))
	} else {
		host := netip.MustParseAddr("2001:db8::2")
		h := host.As16()
		copy(ip[24:40], h[:])
		icmp := ip[ipv6HeaderLen:]
		icmp[2], icmp[3] = 0, 0
		src := netip.AddrFrom16([16]byte(ip[8:24]))
		binary.BigEndian.PutUint16(icmp[2:4], testpkt.PseudoChecksum(src, host, testpkt.ProtoICMPv6, icmp))
	}
	act, out, err := s.runXDP(s.bal.Program(), in)
	switch {
	case err != nil:
		r.fail("%v", err)
	case act != actionCodes["XDP_PASS"] || !bytes.Equal(out, in):
		r.fail("echo request to a non-VIP address: action %s, output %s; vipcast must pass it untouched (Katran would answer)",
			actionName(c.Program, act), testpkt.Describe(out))
	}
}

// icmpMessage is the ICMP/ICMPv6 message of a frame with a plain IP header.
func icmpMessage(frame []byte) (icmp []byte, v6 bool) {
	ip := frame[ethHeaderLen:]
	if binary.BigEndian.Uint16(frame[12:14]) == etherTypeIPv6 {
		return ip[ipv6HeaderLen:], true
	}
	return ip[int(ip[0]&0xf)*4:], false
}

func icmpChecksum(frame []byte) uint16 {
	icmp, _ := icmpMessage(frame)
	return binary.BigEndian.Uint16(icmp[2:4])
}

// icmpChecksumVerifies checks the ICMP (or ICMPv6, with its pseudo-header)
// checksum as a receiving stack does (RFC 1071: the sum must fold to zero).
func icmpChecksumVerifies(frame []byte) bool {
	icmp, v6 := icmpMessage(frame)
	if !v6 {
		return testpkt.Checksum(icmp) == 0
	}
	ip := frame[ethHeaderLen:]
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	return testpkt.PseudoChecksum(src, dst, testpkt.ProtoICMPv6, icmp) == 0
}

// checkTooBig checks an ICMP too-big vipcast generated. vipcast reports the
// MTU that fits through its tunnel (1500 minus the outer header of the
// VIP's reals); Katran reports MAX_PCKT_SIZE - 14 = 1500, the size of the
// packet before encapsulation. Everything else must agree byte for byte.
func (s *suiteRun) checkTooBig(c *fixture, out []byte, r *result) {
	mtu, err := s.tooBigMTU(c.Input)
	if err != nil {
		r.fail("%v", err)
		return
	}
	want := vipcastTooBig(c.Input, mtu)
	if d := testpkt.Diff(out, want); d != "" {
		r.fail("not vipcast's ICMP too-big (next-hop MTU %d):\n%s", mtu, d)
		return
	}
	if bytes.Equal(out, c.Output) {
		return
	}
	katranMTU, patched := withTooBigMTU(c.Output, mtu)
	if !bytes.Equal(patched, want) {
		r.fail("differs from Katran's ICMP beyond the MTU field (Katran's is a variant vipcast does not build):\n%s", testpkt.Diff(out, c.Output))
		return
	}
	r.note = fmt.Sprintf("next-hop MTU %d (what fits through the tunnel), Katran says %d; otherwise byte-identical", mtu, katranMTU)
}

// checkTooBigInsteadOfDrop is base/33: vipcast's ICMP reply, and Katran's
// drop when ICMP generation is off.
func checkTooBigInsteadOfDrop(s *suiteRun, c *fixture, act uint32, out []byte, r *result) {
	if act != actionCodes["XDP_TX"] {
		r.fail("action %s, want XDP_TX with an ICMP fragmentation-needed: %s", actionName(c.Program, act), testpkt.Describe(out))
		return
	}
	mtu, err := s.tooBigMTU(c.Input)
	if err != nil {
		r.fail("%v", err)
		return
	}
	if d := testpkt.Diff(out, vipcastTooBig(c.Input, mtu)); d != "" {
		r.fail("not the expected ICMP fragmentation-needed (next-hop MTU %d):\n%s", mtu, d)
	}
	quiet, err := s.quietTwin()
	if err != nil {
		r.fail("balancer with NoICMPTooBig: %v", err)
		return
	}
	act, out, err = s.runXDP(quiet.Program(), c.Input)
	switch {
	case err != nil:
		r.fail("%v", err)
	case act != actionCodes[c.ExpectedAction]:
		r.fail("with NoICMPTooBig: action %s, Katran %s", actionName(c.Program, act), c.ExpectedAction)
	case !bytes.Equal(out, c.Output):
		r.fail("with NoICMPTooBig the dropped frame changed:\n%s", testpkt.Diff(out, c.Output))
	}
}

// tooBigMTU is the next-hop MTU vipcast reports for a frame to a VIP: the
// tunnel MTU less the outer header its reals need.
func (s *suiteRun) tooBigMTU(frame []byte) (int, error) {
	key, ok := s.vipFor(frame)
	if !ok {
		return 0, fmt.Errorf("the frame is not addressed to a programmed VIP: %s", testpkt.Describe(frame))
	}
	v := s.vips[key]
	if len(v.Reals) == 0 {
		return 0, fmt.Errorf("VIP %s has no reals", key)
	}
	overhead := ipv4HeaderLen
	if a, err := netip.ParseAddr(v.Reals[0]); err == nil && a.Is6() {
		overhead = ipv6HeaderLen
	}
	return tunnelMTU - overhead, nil
}

// vipFor finds the programmed VIP a plain TCP/UDP frame is addressed to,
// port-specific first, then the VIP's port-0 service.
func (s *suiteRun) vipFor(frame []byte) (lb.VIPKey, bool) {
	if len(frame) < ethHeaderLen+ipv6HeaderLen+4 {
		return lb.VIPKey{}, false
	}
	var dst netip.Addr
	var proto uint8
	var l4 []byte
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeIPv4:
		ip := frame[ethHeaderLen:]
		dst, proto, l4 = netip.AddrFrom4([4]byte(ip[16:20])), ip[9], ip[int(ip[0]&0xf)*4:]
	case etherTypeIPv6:
		ip := frame[ethHeaderLen:]
		dst, proto, l4 = netip.AddrFrom16([16]byte(ip[24:40])), ip[6], ip[ipv6HeaderLen:]
	default:
		return lb.VIPKey{}, false
	}
	port := binary.BigEndian.Uint16(l4[2:4])
	for _, p := range []uint16{port, 0} {
		k := lb.VIPKey{Addr: dst, Port: p, Proto: lb.Proto(proto)}
		if _, ok := s.vips[k]; ok {
			return k, true
		}
	}
	return lb.VIPKey{}, false
}

// vipcastTooBig builds the ICMP error vipcast answers an oversized frame
// with: from the VIP to the client, back to the MAC it came from, quoting
// the first 84 (IPv4) or 248 (IPv6) bytes of the packet.
func vipcastTooBig(in []byte, mtu int) []byte {
	eth := testpkt.Eth{Dst: net.HardwareAddr(in[6:12]), Src: net.HardwareAddr(in[0:6])}
	ip := in[ethHeaderLen:]
	if binary.BigEndian.Uint16(in[12:14]) == etherTypeIPv4 {
		src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		eth.Type = etherTypeIPv4
		msg := testpkt.ICMPv4{Type: 3, Code: 4, Rest: testpkt.FragNeededRest(uint16(mtu))}.Message(ip[:tooBigQuoteV4])
		return eth.Frame(testpkt.IPv4{TTL: outerTTL, Proto: testpkt.ProtoICMP, Src: dst, Dst: src}.Packet(msg))
	}
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	eth.Type = etherTypeIPv6
	msg := testpkt.ICMPv6{Type: 2, Rest: testpkt.PacketTooBigRest(uint32(mtu))}.Message(dst, src, ip[:tooBigQuoteV6])
	return eth.Frame(testpkt.IPv6{NextHeader: testpkt.ProtoICMPv6, HopLimit: outerTTL, Src: dst, Dst: src}.Packet(msg))
}

// withTooBigMTU returns the MTU in Katran's ICMP too-big frame and a copy
// with it replaced (checksum redone), or 0 and the frame if it is not one.
func withTooBigMTU(frame []byte, mtu int) (int, []byte) {
	f := slices.Clone(frame)
	if len(f) < ethHeaderLen+ipv6HeaderLen+8 {
		return 0, f
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case etherTypeIPv4:
		icmp := f[ethHeaderLen+ipv4HeaderLen:]
		old := int(binary.BigEndian.Uint16(icmp[6:8]))
		binary.BigEndian.PutUint16(icmp[6:8], uint16(mtu))
		icmp[2], icmp[3] = 0, 0
		binary.BigEndian.PutUint16(icmp[2:4], testpkt.Checksum(icmp))
		return old, f
	case etherTypeIPv6:
		ip := f[ethHeaderLen:]
		icmp := ip[ipv6HeaderLen:]
		old := int(binary.BigEndian.Uint32(icmp[4:8]))
		binary.BigEndian.PutUint32(icmp[4:8], uint32(mtu))
		icmp[2], icmp[3] = 0, 0
		src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		binary.BigEndian.PutUint16(icmp[2:4], testpkt.PseudoChecksum(src, dst, testpkt.ProtoICMPv6, icmp))
		return old, f
	}
	return 0, f
}

// katranOuterSource is the outer source Katran crafts for a flow (the
// shared README): IPv4 172.16.X.Y with X = c ^ (sport & 0xff) and Y = d ^
// (sport >> 8) for client a.b.c.d; IPv6 100:: + (low 32 bits of the client
// ^ sport << 16). For a dport_only VIP Katran zeroes the client address
// before crafting, but keeps the client's real source port.
func katranOuterSource(client netip.Addr, sport uint16, outerV6 bool, variant string) (netip.Addr, error) {
	switch variant {
	case "standard", "":
	case "dport_only_vip_src_zeroed":
		if client.Is4() {
			client = netip.IPv4Unspecified()
		} else {
			client = netip.IPv6Unspecified()
		}
	default:
		return netip.Addr{}, fmt.Errorf("outer source variant %q unknown to the test", variant)
	}
	var low [4]byte
	if client.Is4() {
		low = client.As4()
	} else {
		a := client.As16()
		low = [4]byte(a[12:16])
	}
	if !outerV6 {
		return netip.AddrFrom4([4]byte{sourcePrefixV4[0], sourcePrefixV4[1], low[2] ^ byte(sport), low[3] ^ byte(sport>>8)}), nil
	}
	var a [16]byte
	copy(a[:12], sourcePrefixV6[:])
	binary.BigEndian.PutUint32(a[12:], binary.BigEndian.Uint32(low[:])^uint32(sport)<<16)
	return netip.AddrFrom16(a), nil
}

// tosOf is the DSCP+ECN byte of the frame's IP packet.
func tosOf(frame []byte) uint8 {
	ip := frame[ethHeaderLen:]
	if binary.BigEndian.Uint16(frame[12:14]) == etherTypeIPv6 {
		return ip[0]<<4 | ip[1]>>4
	}
	return ip[1]
}

// eqInt is true when the fixture has no such check or it equals v.
func eqInt(p *int, v int) bool { return p == nil || *p == v }
