package lb

import (
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
)

func TestRestartAdoptsPinnedState(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join("/sys/fs/bpf", "vipcast-test-"+testutil.RunID())
	t.Cleanup(func() { _ = RemovePins(pins) })
	cfg := Config{PinPath: pins, ConnTableSize: 4096, FallbackTableSize: 1024, MaxVIPs: 8, MaxReals: 64}

	first := cfg
	first.GatewayMAC = gwMAC
	b1, err := New(first)
	if err != nil {
		t.Fatal(err)
	}
	if b1.Adopted() {
		t.Fatal("a fresh pin directory was reported as adopted")
	}
	k := mustVIP(t, b1, "10.200.1.1:80/tcp", FlagNoSrcPort)
	v6 := mustVIP(t, b1, "[102:304::]:80/tcp", 0, "fc00::1") // looks like 1.2.3.4 in the first word
	reals := []Real{{Addr: addr("10.0.0.1"), Weight: 1}, {Addr: addr("10.0.0.2"), Weight: 2}, {Addr: addr("10.0.0.3"), Weight: 3, State: Down}}
	if err := b1.SetReals(k, reals); err != nil {
		t.Fatal(err)
	}
	syn := ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPSyn))
	ack := ethIn(testpkt.EtherTypeIPv4, tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPAck))
	_, out := run(t, b1.Program(), syn)
	firstReal := netip.AddrFrom4([4]byte(out[30:34]))
	b1.Close()

	// The restarted daemon knows no gateway yet: it must keep the old one.
	b2, err := New(cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { b2.Close() })
	if !b2.Adopted() {
		t.Fatal("restart did not adopt the pinned state")
	}
	if got := b2.GatewayMAC(); got.String() != gwMAC.String() {
		t.Fatalf("gateway after restart %v, want %v", got, gwMAC)
	}
	infos := b2.VIPs()
	if len(infos) != 2 || infos[0].Key != k || infos[1].Key != v6 || infos[0].Flags != FlagNoSrcPort {
		t.Fatalf("adopted VIPs %+v", infos)
	}
	if len(infos[0].Reals) != 3 || infos[0].Reals[2].State != Down || infos[0].Reals[0].Weight != 0 {
		t.Fatalf("adopted reals %+v (weights are unknown until SetReals; 10.0.0.3 down)", infos[0].Reals)
	}
	// The established flow still goes where it went: the table survived.
	before, _ := b2.Stats()
	act, out := run(t, b2.Program(), ack)
	if act != xdpTx || netip.AddrFrom4([4]byte(out[30:34])) != firstReal {
		t.Fatalf("after restart: action %d to %s, want TX to %s", act, testpkt.Describe(out), firstReal)
	}
	if after, _ := b2.Stats(); after.ConnHit != before.ConnHit+1 {
		t.Fatalf("not a connection-table hit after restart")
	}
	// Restating the same reals keeps the ring: new flows land as before.
	if err := b2.SetReals(k, reals); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		client := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		frame := ethIn(testpkt.EtherTypeIPv4, tcp4(client.String(), 1000, "10.200.1.1", 80, testpkt.TCPSyn))
		_, out := run(t, b2.Program(), frame)
		want, err := b2.RealFor(k, Flow{Src: netip.AddrPortFrom(client, 1000), Dst: netip.AddrPortFrom(k.Addr, 80), Proto: TCP})
		if err != nil || netip.AddrFrom4([4]byte(out[30:34])) != want {
			t.Fatalf("flow %d: kernel %s, RealFor %s (%v)", i, testpkt.Describe(out), want, err)
		}
	}

	t.Run("incompatible size is refused clearly", func(t *testing.T) {
		bad := cfg
		bad.MaxVIPs = 16
		_, err := New(bad)
		if err == nil || !errors.Is(err, ebpf.ErrMapIncompatible) || !strings.Contains(err.Error(), "vipcastd --cleanup") {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("RemovePins is idempotent", func(t *testing.T) {
		if err := RemovePins(pins); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(pins); !os.IsNotExist(err) {
			t.Fatalf("pin directory still there: %v", err)
		}
		if err := RemovePins(pins); err != nil {
			t.Fatalf("second RemovePins: %v", err)
		}
	})
}

// Across a restart, connection tables of another size are refused before
// anything changes; a CPU that no longer forwards loses its table (it uses
// the fallback table), the others keep theirs, and the set index keeps its
// key.
func TestRestartConnTables(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join("/sys/fs/bpf", "vipcast-test-ct-"+testutil.RunID())
	t.Cleanup(func() { _ = RemovePins(pins) })
	cfg := Config{PinPath: pins, GatewayMAC: gwMAC, ForwardingCPUs: []int{0, 1}, ConnTableSize: 4096, FallbackTableSize: 1024, MaxVIPs: 8, MaxReals: 64}
	b1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	key := b1.connKey
	b1.Close()
	tables := func() map[int]uint32 {
		got := map[int]uint32{}
		outer, err := ebpf.LoadPinnedMap(filepath.Join(pins, "conn_tables"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer outer.Close()
		for cpu := range 2 {
			var m *ebpf.Map
			if err := outer.Lookup(uint32(cpu), &m); err == nil {
				got[cpu] = m.MaxEntries()
				m.Close()
			}
		}
		return got
	}
	want := map[int]uint32{0: 512, 1: 512}
	if got := tables(); !maps.Equal(got, want) {
		t.Fatalf("tables %v, want %v", got, want)
	}

	bigger := cfg
	bigger.ConnTableSize = 8192
	if _, err := New(bigger); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "has 512 sets, this configuration needs 1024") {
		t.Fatalf("restart with another lru_size: %v", err)
	}
	if got := tables(); !maps.Equal(got, want) {
		t.Fatalf("a refused restart changed the tables: %v, want %v", got, want)
	}

	fewer := cfg
	fewer.ForwardingCPUs, fewer.ConnTableSize = []int{1}, 2048 // the same 512 sets for CPU 1
	b2, err := New(fewer)
	if err != nil {
		t.Fatalf("restart on fewer cores: %v", err)
	}
	defer b2.Close()
	if got, want := tables(), map[int]uint32{1: 512}; !maps.Equal(got, want) {
		t.Fatalf("tables after the restart %v, want %v", got, want)
	}
	if b2.connKey != key {
		t.Fatal("the set index key changed across the restart: adopted tables would be looked up in the wrong sets")
	}
}
