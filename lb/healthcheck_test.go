package lb

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
)

const (
	tcActUnspec   = ^uint32(0) // -1: continue with the next program
	tcActOK       = 0
	tcActRedirect = 7
)

var hcLocalMAC = testpkt.MAC("00:ff:de:ad:be:af")

func newTestHealthcheck(t *testing.T, redirect int) *Healthcheck {
	t.Helper()
	testutil.RequirePrivileged(t)
	h, err := NewHealthcheck(HealthcheckConfig{
		SourceV4: addr("10.0.13.37"), SourceV6: addr("fc00:2307::1337"),
		LocalMAC: hcLocalMAC, GatewayMAC: gwMAC, RedirectIfindex: redirect,
	})
	if err != nil {
		t.Fatalf("NewHealthcheck: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	for mark, real := range map[uint32]string{1: "10.0.0.1", 2: "10.0.0.2", 3: "fc00::1"} {
		if err := h.AddMark(mark, addr(real)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// runSKB runs a TC program on a frame with skb->mark set. The context is
// the head of struct __sk_buff: len, pkt_type (must be zero), mark.
func runSKB(t *testing.T, prog *ebpf.Program, frame []byte, mark uint32) (uint32, []byte) {
	t.Helper()
	ctx := make([]byte, 12)
	binary.NativeEndian.PutUint32(ctx[8:], mark)
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256), Context: ctx, Repeat: 1}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return ret, opts.DataOut
}

func TestHealthcheckEncap(t *testing.T) {
	udp := udp4("192.168.1.1", 31337, "10.200.1.1", 80, payload)
	tcp := tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPAck)
	tcpV6 := tcp6("fc00:2::1", 31337, "fc00:1::1", 80, testpkt.TCPAck, payload)
	hcOut := func(typ uint16, outer []byte) []byte {
		return testpkt.Eth{Dst: gwMAC, Src: hcLocalMAC, Type: typ}.Frame(outer)
	}
	ipip := func(real string, inner []byte) []byte {
		return hcOut(testpkt.EtherTypeIPv4, testpkt.IPv4{TTL: 64, Proto: testpkt.ProtoIPIP, Src: addr("10.0.13.37"), Dst: addr(real)}.Packet(inner))
	}
	in6 := func(real string, nh uint8, inner []byte) []byte {
		return hcOut(testpkt.EtherTypeIPv6, testpkt.IPv6{NextHeader: nh, HopLimit: 64, Src: addr("fc00:2307::1337"), Dst: addr(real)}.Packet(inner))
	}
	cases := []struct {
		name     string
		redirect int
		in       []byte
		mark     uint32
		want     uint32
		out      []byte
	}{
		{"no mark: untouched, next program", 0, ethIn(testpkt.EtherTypeIPv4, udp), 0, tcActUnspec, nil},
		{"unknown mark: untouched, next program", 0, ethIn(testpkt.EtherTypeIPv4, udp), 99, tcActUnspec, nil},
		{"v4 UDP, mark 1", 0, ethIn(testpkt.EtherTypeIPv4, udp), 1, tcActOK, ipip("10.0.0.1", udp)},
		{"v4 TCP, mark 2", 0, ethIn(testpkt.EtherTypeIPv4, tcp), 2, tcActOK, ipip("10.0.0.2", tcp)},
		{"v6 TCP, mark 3 (IP6IP6)", 0, ethIn(testpkt.EtherTypeIPv6, tcpV6), 3, tcActOK, in6("fc00::1", testpkt.ProtoIPv6, tcpV6)},
		{"v4 in v6, mark 3", 0, ethIn(testpkt.EtherTypeIPv4, tcp), 3, tcActOK, in6("fc00::1", testpkt.ProtoIPIP, tcp)},
		{"redirect mode", 1, ethIn(testpkt.EtherTypeIPv4, udp), 1, tcActRedirect, ipip("10.0.0.1", udp)},
	}
	plain, redirect := newTestHealthcheck(t, 0), newTestHealthcheck(t, 1)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := plain
			if tc.redirect != 0 {
				h = redirect
			}
			act, got := runSKB(t, h.Program(), tc.in, tc.mark)
			if act != tc.want {
				t.Fatalf("action %d, want %d", act, tc.want)
			}
			want := tc.out
			if want == nil {
				want = tc.in
			}
			if d := testpkt.Diff(got, want); d != "" {
				t.Fatalf("output differs:\n%s", d)
			}
		})
	}
	st, err := plain.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Encapsulated != 4 || st.NoMark != 1 || st.UnknownMark != 1 {
		t.Errorf("stats %+v, want 4 encapsulated, 1 unmarked, 1 unknown mark", st)
	}
}

func TestHealthcheckMarks(t *testing.T) {
	h := newTestHealthcheck(t, 0)
	noV6, err := NewHealthcheck(HealthcheckConfig{SourceV4: addr("10.0.13.37"), MaxMarks: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer noV6.Close()
	if err := noV6.AddMark(1, addr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		h    *Healthcheck
		mark uint32
		real string
		is   error
		text string
	}{
		{"mark 0", h, 0, "10.0.0.1", ErrInvalid, "mark 0: marks start at 1"},
		{"duplicate", h, 1, "10.0.0.9", ErrExists, "mark 1: already maps to 10.0.0.1"},
		{"multicast real", h, 9, "224.0.0.1", ErrInvalid, "real 224.0.0.1: must be a plain unicast address"},
		{"v6 real without v6 source", noV6, 2, "fc00::1", ErrInvalid, "no IPv6 healthcheck source address"},
		{"full", noV6, 2, "10.0.0.2", ErrFull, "1 marks configured, the limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.h.Marks()
			err := tc.h.AddMark(tc.mark, addr(tc.real))
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("AddMark error %v, want %v containing %q", err, tc.is, tc.text)
			}
			if after := tc.h.Marks(); len(after) != len(before) {
				t.Fatalf("marks changed on error: %v -> %v", before, after)
			}
		})
	}
	if err := h.DelMark(2); err != nil {
		t.Fatal(err)
	}
	if err := h.DelMark(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DelMark: %v, want ErrNotFound", err)
	}
	want := []Mark{{1, addr("10.0.0.1")}, {3, addr("fc00::1")}}
	got := h.Marks()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Marks() = %v, want %v", got, want)
	}
	// A deleted mark leaves packets untouched again.
	frame := ethIn(testpkt.EtherTypeIPv4, udp4("192.168.1.1", 1, "10.200.1.1", 80, payload))
	if act, out := runSKB(t, h.Program(), frame, 2); act != tcActUnspec || testpkt.Diff(out, frame) != "" {
		t.Fatalf("deleted mark still encapsulates: action %d %s", act, testpkt.Describe(out))
	}
}
