package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"vipcast/test/lab"
)

// XDP actions.
const (
	xdpDrop = 1
	xdpPass = 2
)

// firewall is a stand-in for another XDP program that shares the
// interface: in slot 0 of the root program, it drops IPv4 from src and
// hands everything else to slots 1 and 2 of the same array.
func firewall(t *testing.T, arr *ebpf.Map, src [4]byte) *ebpf.Program {
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
	}
	for i, b := range src {
		insns = append(insns,
			asm.LoadMem(asm.R5, asm.R2, int16(26+i), asm.Byte),
			asm.JNE.Imm(asm.R5, int32(b), "next"))
	}
	insns = append(insns,
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
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "lab_firewall", Type: ebpf.XDP, AttachType: ebpf.AttachXDP, License: "Dual BSD/GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("load the firewall program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// Scenario 10: shared mode on LB2. `vipcast xdp-root install` puts the
// root program on the interface; a firewall takes slot 0; vipcastd (mode
// "shared") registers its balancer in slot 2. Traffic the firewall drops
// never reaches the balancer; the rest is balanced as usual.
func TestSharedMode(t *testing.T) {
	l := setup(t)
	lb2 := l.LBs[1]
	rootPins := filepath.Join(l.PinRoot, "lb2-root")
	cli := filepath.Join(l.Bin, lab.CLIBin)
	out := mustExec(t, lb2.NS, cli, "xdp-root", "install", lb2.Iface, "--slots", "3", "--pin-dir", rootPins)
	t.Cleanup(func() {
		if _, err := lb2.NS.Exec(cli, "xdp-root", "remove", lb2.Iface, "--pin-dir", rootPins); err != nil {
			t.Error(err)
		}
	})
	m := regexp.MustCompile(`root_map_path = "([^"]+)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("vipcast xdp-root install: no root_map_path in %q", out)
	}
	arrayPath := m[1]
	t.Logf("vipcast xdp-root install: %s", strings.TrimSpace(out))

	arr, err := ebpf.LoadPinnedMap(arrayPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	if err := arr.Put(uint32(0), firewall(t, arr, lab.Client2V4.As4())); err != nil {
		t.Fatalf("firewall into slot 0: %v", err)
	}

	vip := lab.VIPCfg{Addr: lab.VIP4Root, Port: lab.HTTPPort, Proto: "tcp", Reals: lab.Reals4()}
	startLB2(t, l, lab.DaemonConfig{
		GracefulRestart: false,
		Shared:          &lab.SharedMode{RootMapPath: arrayPath, Position: 2},
		VIPs:            []lab.VIPCfg{vip},
	})
	if err := lb2.WaitRouted(bounded(t, 20*time.Second), []lab.VIPCfg{vip}, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	link := mustExec(t, lb2.NS, "ip", "link", "show", lb2.Iface)
	if !strings.Contains(link, "name vipcast_root") {
		t.Errorf("%s's XDP program is not the root program:\n%s", lb2.Name, link)
	}

	// On LB2's fabric port: what arrives from the firewalled address, and
	// every tunnelled packet the balancer sends.
	blockedSrc := lab.Client2V4.String()
	capture, err := lab.StartCapture(l.Fabric, lb2.Name, "ip proto 4 or (ip and src host "+blockedSrc+")")
	if err != nil {
		t.Fatal(err)
	}
	before := vipPackets(stats(t, lb2), vip)
	got, errs := lab.Spread(bounded(t, 20*time.Second), l.Client, ap(lab.VIP4Root, lab.HTTPPort), 30, 4, 0, lab.DialOptions{Src: lab.ClientV4})
	if len(errs) > 0 || len(got) < 2 {
		t.Errorf("from %s (passed by the firewall) to %s: %s, errors %v", lab.ClientV4, lab.VIP4Root, got, errs)
	}
	balanced := vipPackets(stats(t, lb2), vip) - before
	blocked := 0
	for i := 0; i < 3; i++ {
		if _, err := lab.Get(l.Client, ap(lab.VIP4Root, lab.HTTPPort), "/", lab.DialOptions{Src: lab.Client2V4, Timeout: 300 * time.Millisecond}); err != nil {
			blocked++
		}
	}
	lines := capture.Stop()
	var arrived, tunnelled int
	for _, line := range lines {
		switch {
		case strings.HasPrefix(line, "IP "+blockedSrc+"."):
			arrived++
		case strings.Contains(line, ": IP "+blockedSrc+"."):
			tunnelled++
		}
	}
	t.Logf("through root slot 0 (firewall) and slot 2 (vipcast): 30 requests from %s answered by %s (%d packets balanced); 3 connections from %s: %d blocked, %d of their packets reached LB2, %d left it tunnelled",
		lab.ClientV4, got, balanced, blockedSrc, blocked, arrived, tunnelled)
	if blocked != 3 {
		t.Errorf("%d of 3 connections from %s got through the firewall in slot 0", 3-blocked, blockedSrc)
	}
	if arrived == 0 {
		t.Errorf("no packet from %s reached LB2: the test did not exercise the firewall", blockedSrc)
	}
	if tunnelled != 0 {
		t.Errorf("the balancer tunnelled %d packets from the firewalled %s, want 0", tunnelled, blockedSrc)
	}
	if balanced < 3*30 {
		t.Errorf("the balancer in slot 2 counted %d packets for 30 connections", balanced)
	}
}
