package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"vipcast/internal/testpkt"
)

func TestParseVIPKey(t *testing.T) {
	cases := []struct {
		in   string
		want VIPKey
		err  string
	}{
		{"203.0.113.1:80/tcp", VIPKey{addr("203.0.113.1"), 80, TCP}, ""},
		{"[2001:db8:f00::1]:443/UDP", VIPKey{addr("2001:db8:f00::1"), 443, UDP}, ""},
		{"203.0.113.1:0/tcp", VIPKey{addr("203.0.113.1"), 0, TCP}, ""},
		{"203.0.113.1:80", VIPKey{}, `vip "203.0.113.1:80": want ADDRESS:PORT/PROTOCOL`},
		{"203.0.113.1/tcp", VIPKey{}, `vip "203.0.113.1/tcp"`},
		{"203.0.113.1:80/sctp", VIPKey{}, `protocol "sctp": must be tcp or udp`},
		{"203.0.113.1:70000/tcp", VIPKey{}, `vip "203.0.113.1:70000/tcp"`},
		{"2001:db8::1:80/tcp", VIPKey{}, `vip "2001:db8::1:80/tcp"`},
		{"0.0.0.0:80/tcp", VIPKey{}, "address must be unicast"},
		{"[::ffff:1.2.3.4]:80/tcp", VIPKey{}, "use the plain IPv4 form"},
		{"[fe80::1%eth0]:80/tcp", VIPKey{}, "must not have a zone"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVIPKey(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v, want ErrInvalid containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			if got.String() != strings.ToLower(tc.in) {
				t.Errorf("String() = %q, want %q", got.String(), strings.ToLower(tc.in))
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	f, err := ParseFlags("no_src_port, lru_bypass")
	if err != nil || f != FlagNoSrcPort|FlagLRUBypass || f.String() != "no_src_port,lru_bypass" {
		t.Fatalf("ParseFlags = %v (%s), %v", f, f, err)
	}
	if f, err := ParseFlags(""); err != nil || f != 0 || f.String() != "-" {
		t.Fatalf("empty flags = %v, %v", f, err)
	}
	if _, err := ParseFlags("no_src_port,fast"); err == nil || !strings.Contains(err.Error(), `flag "fast": must be one of no_src_port, lru_bypass, dport_only`) {
		t.Fatalf("unknown flag error: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		cfg  Config
		text string
	}{
		{Config{MaxVIPs: -1}, "max_vips: must be 1..65536, got -1"},
		{Config{MaxReals: 1}, "max_reals: must be 2..1048576, got 1"},
		{Config{TunnelMTU: 1000}, "tunnel_mtu: must be 1280..9216, got 1000"},
		{Config{SourcePrefixV4: netip.MustParsePrefix("172.16.0.0/12")}, "tunnel_source_v4: must be an IPv4 /16"},
		{Config{SourcePrefixV6: netip.MustParsePrefix("100::/64")}, "tunnel_source_v6: must be an IPv6 /96"},
		{Config{ForwardingCPUs: []int{}}, "forwarding_cores: must list at least one CPU"},
		{Config{ForwardingCPUs: []int{0}, NUMANodes: []int{0, 0}}, "numa_nodes: must have one entry per forwarding core (1), got 2"},
		{Config{ForwardingCPUs: []int{0, 1}, ConnTableSize: 1}, "lru_size: 1 is smaller than the number of forwarding cores (2)"},
		{Config{ForwardingCPUs: []int{4096}}, "forwarding_cores[0]: CPU 4096 does not exist"},
		{Config{ForwardingCPUs: []int{0, 0}}, "forwarding_cores[1]: CPU 0 listed twice"},
		{Config{GatewayMAC: []byte{1, 2, 3}}, "gateway_mac: must be a 6-byte Ethernet address"},
	}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			b, err := New(tc.cfg)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q, want ErrInvalid containing %q", err, tc.text)
			}
		})
	}
}

// snapshot is everything the Balancer reports, for "nothing changed" checks.
func snapshot(t *testing.T, b *Balancer) []VIPInfo {
	t.Helper()
	return b.VIPs()
}

func TestAPIErrorsChangeNothing(t *testing.T) {
	b := newTestBalancer(t, Config{MaxVIPs: 3, MaxReals: 4}) // 3 real ids: 1..3
	v4 := mustVIP(t, b, "203.0.113.1:80/tcp", 0, "192.0.2.11")
	v6 := mustVIP(t, b, "[2001:db8:f00::1]:80/tcp", 0, "2001:db8::11")
	unknown, _ := ParseVIPKey("203.0.113.9:80/tcp")

	cases := []struct {
		name string
		op   func() error
		is   error
		text string
	}{
		{"duplicate VIP", func() error { return b.AddVIP(VIP{Key: v4}) }, ErrExists, "vip 203.0.113.1:80/tcp: already exists"},
		{"bad ring size", func() error { return b.AddVIP(VIP{Key: unknown, RingSize: 100}) }, ErrInvalid, "vip 203.0.113.9:80/tcp: ring_size"},
		{"conflicting flags", func() error { return b.AddVIP(VIP{Key: unknown, Flags: FlagDportOnly | FlagNoSrcPort}) }, ErrInvalid, "dport_only and no_src_port exclude each other"},
		{"unknown flag bits", func() error { return b.SetVIPFlags(v4, 0x40) }, ErrInvalid, "unknown flags 0x40"},
		{"unknown VIP: del", func() error { return b.DelVIP(unknown) }, ErrNotFound, "vip 203.0.113.9:80/tcp: not found"},
		{"unknown VIP: add real", func() error { return b.AddReal(unknown, Real{Addr: addr("192.0.2.12"), Weight: 1}) }, ErrNotFound, "vip 203.0.113.9:80/tcp: not found"},
		{"unknown VIP: flags", func() error { return b.SetVIPFlags(unknown, 0) }, ErrNotFound, "not found"},
		{"v6 VIP with v4 real", func() error { return b.AddReal(v6, Real{Addr: addr("192.0.2.12"), Weight: 1}) }, ErrInvalid, "an IPv6 VIP needs IPv6 reals"},
		{"duplicate real", func() error { return b.AddReal(v4, Real{Addr: addr("192.0.2.11"), Weight: 1}) }, ErrExists, "real 192.0.2.11: already exists"},
		{"weight out of range", func() error { return b.AddReal(v4, Real{Addr: addr("192.0.2.12"), Weight: 70000}) }, ErrInvalid, "weight must be 0..65535, got 70000"},
		{"unknown real: update", func() error { return b.UpdateReal(v4, Real{Addr: addr("192.0.2.99"), Weight: 1}) }, ErrNotFound, "real 192.0.2.99: not found"},
		{"unknown real: del", func() error { return b.DelReal(v4, addr("192.0.2.99")) }, ErrNotFound, "real 192.0.2.99: not found"},
		{"multicast real", func() error { return b.AddReal(v4, Real{Addr: addr("224.0.0.5"), Weight: 1}) }, ErrInvalid, "must be a unicast address"},
		{"bad state", func() error { return b.UpdateReal(v4, Real{Addr: addr("192.0.2.11"), State: 9}) }, ErrInvalid, "unknown state 9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, b)
			err := tc.op()
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want %v containing %q", err, tc.is, tc.text)
			}
			if after := snapshot(t, b); !reflect.DeepEqual(before, after) {
				t.Fatalf("state changed on error:\n before %+v\n after  %+v", before, after)
			}
		})
	}

	t.Run("tables full", func(t *testing.T) {
		third := mustVIP(t, b, "203.0.113.3:80/udp", 0, "192.0.2.13")
		before := snapshot(t, b)
		k, _ := ParseVIPKey("203.0.113.4:80/tcp")
		if err := b.AddVIP(VIP{Key: k}); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "3 VIPs configured, the limit (max_vips)") {
			t.Fatalf("4th VIP: %v", err)
		}
		if err := b.AddReal(third, Real{Addr: addr("192.0.2.14"), Weight: 1}); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "3 reals configured, the limit of max_reals = 4 (one id is reserved)") {
			t.Fatalf("4th real: %v", err)
		}
		if after := snapshot(t, b); !reflect.DeepEqual(before, after) {
			t.Fatalf("state changed: %+v -> %+v", before, after)
		}
		// Freed capacity is usable again.
		if err := b.DelVIP(third); err != nil {
			t.Fatal(err)
		}
		mustVIP(t, b, "203.0.113.4:80/tcp", 0, "192.0.2.14")
	})
}

func TestVIPLifecycleAndStats(t *testing.T) {
	b := newTestBalancer(t, Config{})
	k := mustVIP(t, b, "10.200.1.1:80/udp", 0, "10.0.0.1", "10.0.0.2")
	other := mustVIP(t, b, "10.200.1.1:53/udp", 0, "10.0.0.3")
	frame := ethIn(testpkt.EtherTypeIPv4, udp4("192.168.1.1", 31337, "10.200.1.1", 80, payload))
	ipLen := uint64(len(frame) - 14)

	for range 3 {
		if act, _ := run(t, b.Program(), frame); act != xdpTx {
			t.Fatalf("action %d", act)
		}
	}
	vc, err := b.VIPStats(k)
	if err != nil || vc != (Counter{3, 3 * ipLen}) {
		t.Fatalf("VIPStats = %+v, %v; want 3 packets, %d bytes", vc, err, 3*ipLen)
	}
	var sum Counter
	for _, r := range []string{"10.0.0.1", "10.0.0.2"} {
		c, err := b.RealStats(k, addr(r))
		if err != nil {
			t.Fatal(err)
		}
		sum.Packets += c.Packets
		sum.Bytes += c.Bytes
	}
	if sum != vc {
		t.Fatalf("per-real counters add up to %+v, VIP counter %+v", sum, vc)
	}
	if c, _ := b.VIPStats(other); c != (Counter{}) {
		t.Fatalf("untouched VIP counted %+v", c)
	}

	// Removing the VIP stops forwarding; the address stays a VIP (port
	// 53 remains), so the packet passes to the kernel.
	if err := b.DelVIP(k); err != nil {
		t.Fatal(err)
	}
	if act, _ := run(t, b.Program(), frame); act != xdpPass {
		t.Fatalf("after DelVIP: action %d, want pass", act)
	}
	// Re-adding starts from zeroed counters even if the slot is reused.
	k = mustVIP(t, b, "10.200.1.1:80/udp", 0, "10.0.0.1")
	if c, _ := b.VIPStats(k); c != (Counter{}) {
		t.Fatalf("re-added VIP starts with %+v", c)
	}
	if got := fmt.Sprint(b.VIPs()); !strings.Contains(got, "10.0.0.1") {
		t.Fatalf("VIPs() = %s", got)
	}
	// All reals removed: the VIP drops (it is ours, but nobody serves it).
	if err := b.DelReal(k, addr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if act, _ := run(t, b.Program(), frame); act != xdpDrop {
		t.Fatalf("VIP without reals: action %d, want drop", act)
	}
}

// A CPU without its own connection table uses the shared fallback table.
func TestFallbackTable(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs: one with a table, one without")
	}
	// run() executes on CPU 0, which gets no table of its own here.
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{1}, ConnTableSize: 100})
	mustVIP(t, b, "10.200.1.1:80/tcp", 0, "10.0.0.1", "10.0.0.2")
	syn := ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPSyn))
	ack := ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPAck))
	for _, frame := range [][]byte{syn, ack} {
		if act, _ := run(t, b.Program(), frame); act != xdpTx {
			t.Fatalf("action %d", act)
		}
	}
	st, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.FallbackHit != 1 || st.ConnHit != 0 || st.ConnMissTcpSyn != 1 {
		t.Fatalf("fallback %d, per-CPU hits %d, SYN misses %d; want 1, 0, 1", st.FallbackHit, st.ConnHit, st.ConnMissTcpSyn)
	}
}

func TestForwardingCoresGetTables(t *testing.T) {
	b := newTestBalancer(t, Config{ForwardingCPUs: []int{1}, NUMANodes: []int{0}, ConnTableSize: 5000})
	for cpu, want := range map[uint32]bool{0: false, 1: true} {
		var m *ebpf.Map
		err := b.objs.ConnTables.Lookup(cpu, &m)
		if got := err == nil; got != want {
			t.Fatalf("CPU %d has a table: %v, want %v (%v)", cpu, got, want, err)
		}
		if m != nil {
			if m.MaxEntries() != 5000/connWays {
				t.Errorf("CPU %d table has %d sets, want %d", cpu, m.MaxEntries(), 5000/connWays)
			}
			m.Close()
		}
	}
	tables, bytes := b.ConnTables()
	if len(tables) != 1 || tables[0] != (ConnTable{CPU: 1, Node: 0, Entries: 5000}) ||
		bytes != 5000/connWays*uint64(binarySize[connSet]()) {
		t.Fatalf("ConnTables() = %+v, %d bytes", tables, bytes)
	}
	if _, err := New(Config{ForwardingCPUs: []int{0}, NUMANodes: []int{7}, ConnTableSize: 10}); err == nil ||
		!strings.Contains(err.Error(), "CPU 0") {
		t.Fatalf("table on a missing NUMA node: %v", err)
	}
}
