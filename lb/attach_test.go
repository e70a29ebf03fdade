package lb

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"vipcast/internal/testpkt"
	"vipcast/internal/testutil"
)

// xdpProgID returns the id of the XDP program attached to an interface.
func xdpProgID(t *testing.T, ns *testutil.NS, ifname string) uint32 {
	t.Helper()
	var id uint32
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			id = x.ProgId
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAttachStandalone(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	id := testutil.RunID()
	lbNS, peer := testutil.NewNS(t, id, "lb"), testutil.NewNS(t, id, "peer")
	testutil.Veth(t, lbNS, "eth0", peer, "eth0")
	testutil.Veth(t, lbNS, "eth1", peer, "eth1")
	pins := filepath.Join(BPFFS, "vipcast-test-"+id)
	t.Cleanup(func() { _ = RemovePins(pins) })

	b1 := newTestBalancer(t, Config{})
	var att *Attached
	if err := lbNS.Do(func() (err error) {
		att, err = AttachXDP(b1.Program(), "eth0", XDPAuto, pins)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer att.Link.Close()
	info, _ := b1.Program().Info()
	progID, _ := info.ID()
	if got := xdpProgID(t, lbNS, "eth0"); got != uint32(progID) || att.Mode != XDPNative || att.Updated {
		t.Fatalf("attached prog %d mode %s updated %v; want prog %d, native, new", got, att.Mode, att.Updated, progID)
	}

	// A restart with a new program switches the pinned link in place.
	b2 := newTestBalancer(t, Config{})
	var att2 *Attached
	if err := lbNS.Do(func() (err error) {
		att2, err = AttachXDP(b2.Program(), "eth0", XDPNative, pins)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer att2.Link.Close()
	info2, _ := b2.Program().Info()
	progID2, _ := info2.ID()
	if got := xdpProgID(t, lbNS, "eth0"); !att2.Updated || got != uint32(progID2) {
		t.Fatalf("after restart: prog %d updated %v, want prog %d via the pinned link", got, att2.Updated, progID2)
	}

	// Someone else's program is never replaced.
	var foreign link.Link
	if err := lbNS.Do(func() (err error) {
		l, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		foreign, err = link.AttachXDP(link.XDPOptions{Program: b1.Program(), Interface: l.Attrs().Index})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	err := lbNS.Do(func() error {
		_, err := AttachXDP(b2.Program(), "eth1", XDPNative, filepath.Join(pins, "other"))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "already has an XDP program") {
		t.Fatalf("attach over a foreign program: %v", err)
	}

	// Removing the pins detaches.
	att.Link.Close()
	att2.Link.Close()
	if err := RemovePins(pins); err != nil {
		t.Fatal(err)
	}
	// RemovePins detaches links itself: the program is gone when it returns.
	if id := xdpProgID(t, lbNS, "eth0"); id != 0 {
		t.Fatalf("program %d still attached after RemovePins", id)
	}
}

// filterProgram is a stand-in for a firewall in slot 0 of a root program:
// it drops IPv4 from 198.51.100.0/24 and hands everything else to slots 1
// and 2 of the same array.
func filterProgram(t *testing.T, arr *ebpf.Map) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 34),
		asm.JGT.Reg(asm.R4, asm.R3, "next"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, 0x0008, "next"), // EtherType 0x0800, loaded little-endian
		asm.LoadMem(asm.R5, asm.R2, 26, asm.Byte),
		asm.JNE.Imm(asm.R5, 198, "next"),
		asm.LoadMem(asm.R5, asm.R2, 27, asm.Byte),
		asm.JNE.Imm(asm.R5, 51, "next"),
		asm.LoadMem(asm.R5, asm.R2, 28, asm.Byte),
		asm.JNE.Imm(asm.R5, 100, "next"),
		asm.Mov.Imm(asm.R0, xdpDrop),
		asm.Return(),
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("next"),
		asm.LoadMapPtr(asm.R2, arr.FD()),
		asm.Mov.Imm(asm.R3, 1),
		asm.FnTailCall.Call(),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, arr.FD()),
		asm.Mov.Imm(asm.R3, 2),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, xdpPass),
		asm.Return(),
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{Name: "test_filter", Type: ebpf.XDP, AttachType: ebpf.AttachXDP, License: "Dual BSD/GPL", Instructions: insns}, ebpf.ProgramOptions{LogLevel: ebpf.LogLevelInstruction})
	if err != nil {
		t.Fatalf("load filter: %+v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

func TestSharedMode(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	id := testutil.RunID()
	lbNS, peer := testutil.NewNS(t, id, "lb"), testutil.NewNS(t, id, "peer")
	testutil.Veth(t, lbNS, "eth0", peer, "eth0")
	pins := filepath.Join(BPFFS, "vipcast-test-"+id)
	t.Cleanup(func() { _ = RemovePins(pins) })

	var arrayPath string
	if err := lbNS.Do(func() (err error) {
		arrayPath, err = InstallRoot("eth0", 3, XDPNative, pins)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rootID := xdpProgID(t, lbNS, "eth0")
	if rootID == 0 {
		t.Fatal("root program not attached")
	}
	root, err := ebpf.NewProgramFromID(ebpf.ProgramID(rootID))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	b := newTestBalancer(t, Config{})
	mustVIP(t, b, "10.200.1.1:80/tcp", 0, "10.0.0.3")
	arr, err := ebpf.LoadPinnedMap(arrayPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	if err := arr.Put(uint32(0), filterProgram(t, arr)); err != nil {
		t.Fatal(err)
	}
	if err := RegisterInRoot(b.Program(), arrayPath, 3); err == nil || !strings.Contains(err.Error(), "prog_position: must be 0..2") {
		t.Fatalf("slot out of range: %v", err)
	}
	if err := RegisterInRoot(b.Program(), arrayPath, 2); err != nil {
		t.Fatal(err)
	}

	good := tcp4("192.168.1.1", 31337, "10.200.1.1", 80, testpkt.TCPSyn)
	blocked := tcp4("198.51.100.7", 31337, "10.200.1.1", 80, testpkt.TCPSyn)
	other := tcp4("192.168.1.1", 31337, "192.0.2.99", 80, testpkt.TCPSyn)
	for _, tc := range []struct {
		name string
		in   []byte
		want uint32
		out  []byte
	}{
		{"filtered source dropped by slot 0", ethIn(testpkt.EtherTypeIPv4, blocked), xdpDrop, nil},
		{"VIP traffic balanced by slot 2", ethIn(testpkt.EtherTypeIPv4, good), xdpTx, ipip4Out("172.16.104.123", "10.0.0.3", 0, good)},
		{"other traffic passes", ethIn(testpkt.EtherTypeIPv4, other), xdpPass, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			act, out := run(t, root, tc.in)
			want := tc.out
			if want == nil {
				want = tc.in
			}
			if act != tc.want {
				t.Fatalf("action %d, want %d", act, tc.want)
			}
			if d := testpkt.Diff(out, want); d != "" {
				t.Fatal(d)
			}
		})
	}

	if err := UnregisterFromRoot(arrayPath, 2); err != nil {
		t.Fatal(err)
	}
	if act, _ := run(t, root, ethIn(testpkt.EtherTypeIPv4, good)); act != xdpPass {
		t.Fatalf("after unregistering: action %d, want pass", act)
	}
	// Installing again finds the existing root.
	if err := lbNS.Do(func() error {
		p, err := InstallRoot("eth0", 3, XDPNative, pins)
		if p != arrayPath {
			t.Errorf("second install reports %s, want %s", p, arrayPath)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
