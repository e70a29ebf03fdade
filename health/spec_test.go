package health

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSpecDefaults(t *testing.T) {
	s := CheckSpec{}.WithDefaults()
	if s.Type != TypeTCP || s.Interval != time.Second || s.Timeout != time.Second || s.Rise != 2 || s.Fall != 3 {
		t.Fatalf("defaults: %+v", s)
	}
	h := CheckSpec{Type: TypeHTTP}.WithDefaults()
	if h.Method != "GET" || h.Path != "/" {
		t.Fatalf("http defaults: method %q path %q", h.Method, h.Path)
	}
	u := CheckSpec{Type: TypeUDP}.WithDefaults()
	if u.Expect != ExpectReply {
		t.Fatalf("udp default expect %q, want reply", u.Expect)
	}
	kept := CheckSpec{Interval: 5 * time.Second, Rise: 1}.WithDefaults()
	if kept.Interval != 5*time.Second || kept.Rise != 1 || kept.Fall != 3 {
		t.Fatalf("set fields overwritten: %+v", kept)
	}
}

func TestTargetValidation(t *testing.T) {
	vip := netip.MustParseAddrPort("203.0.113.1:80")
	real := netip.MustParseAddr("192.0.2.11")
	base := Target{ID: "t", VIP: vip, Proto: "tcp", Real: real, Mark: 10000}
	with := func(f func(*Target)) Target { t := base; f(&t); return t }
	tests := []struct {
		name    string
		target  Target
		wantErr string // empty: valid
	}{
		{"tcp default", base, ""},
		{"proto any case", with(func(t *Target) { t.Proto = "TCP" }), ""},
		{"no id", with(func(t *Target) { t.ID = "" }), "empty ID"},
		{"no vip", with(func(t *Target) { t.VIP = netip.AddrPort{} }), "missing VIP"},
		{"no real", with(func(t *Target) { t.Real = netip.Addr{} }), "missing real"},
		{"bad proto", with(func(t *Target) { t.Proto = "sctp" }), "must be tcp or udp"},
		{"bad type", with(func(t *Target) { t.Spec.Type = "smtp" }), `check type "smtp"`},
		{"no mark", with(func(t *Target) { t.Mark = 0 }), "needs a mark"},
		{"no mark but direct", with(func(t *Target) { t.Mark = 0; t.Spec.Direct = true }), ""},
		{"no mark exec", with(func(t *Target) { t.Mark = 0; t.Spec = CheckSpec{Type: TypeExec, Command: []string{"true"}} }), ""},
		{"no mark none", with(func(t *Target) { t.Mark = 0; t.Spec.Type = TypeNone }), ""},
		{"all-port vip needs a port", with(func(t *Target) { t.VIP = netip.AddrPortFrom(vip.Addr(), 0) }), "needs a port"},
		{"all-port vip with port", with(func(t *Target) { t.VIP = netip.AddrPortFrom(vip.Addr(), 0); t.Spec.Port = 8080 }), ""},
		{"icmp needs no port", with(func(t *Target) { t.VIP = netip.AddrPortFrom(vip.Addr(), 0); t.Spec.Type = TypeICMP }), ""},
		{"negative interval", with(func(t *Target) { t.Spec.Interval = -time.Second }), "interval"},
		{"negative timeout", with(func(t *Target) { t.Spec.Timeout = -time.Second }), "timeout"},
		{"negative rise", with(func(t *Target) { t.Spec.Rise = -1 }), "rise"},
		{"negative fall", with(func(t *Target) { t.Spec.Fall = -1 }), "fall"},
		{"http path", with(func(t *Target) { t.Spec = CheckSpec{Type: TypeHTTP, Path: "health"} }), "must start with /"},
		{"http method", with(func(t *Target) { t.Spec = CheckSpec{Type: TypeHTTP, Method: "GET /x"} }), "one token"},
		{"http status", with(func(t *Target) { t.Spec = CheckSpec{Type: TypeHTTPS, ExpectStatus: []int{200, 99}} }), "status 99"},
		{"http host", with(func(t *Target) { t.Spec = CheckSpec{Type: TypeHTTP, Host: "a b"} }), "host"},
		{"udp expect", with(func(t *Target) { t.Spec = CheckSpec{Type: TypeUDP, Expect: "maybe"} }), `expect "maybe"`},
		{"udp silence", with(func(t *Target) { t.Spec = CheckSpec{Type: TypeUDP, Expect: ExpectSilence} }), ""},
		{"exec empty", with(func(t *Target) { t.Spec = CheckSpec{Type: TypeExec} }), "command is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.target.normalize()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want one containing %q and wrapping ErrInvalid", err, tc.wantErr)
			}
		})
	}
}

func TestTargetDestAndEnv(t *testing.T) {
	vip := netip.MustParseAddrPort("203.0.113.1:80")
	real := netip.MustParseAddr("192.0.2.11")
	tests := []struct {
		name     string
		spec     CheckSpec
		wantDest string
		wantMark uint32
		wantEnv  []string
	}{
		{"through the tunnel", CheckSpec{}, "203.0.113.1:80", 10007, []string{"VIPCAST_MARK=10007", "VIPCAST_PORT=80"}},
		{"own port", CheckSpec{Port: 8080}, "203.0.113.1:8080", 10007, []string{"VIPCAST_PORT=8080"}},
		{"direct", CheckSpec{Direct: true, Port: 8080}, "192.0.2.11:8080", 0, []string{"VIPCAST_MARK=0"}},
		{"icmp", CheckSpec{Type: TypeICMP}, "203.0.113.1:0", 10007, nil},
		{"exec", CheckSpec{Type: TypeExec, Command: []string{"x"}}, "203.0.113.1:80", 10007,
			[]string{"VIPCAST_VIP=203.0.113.1", "VIPCAST_VIP_PORT=80", "VIPCAST_PROTO=tcp", "VIPCAST_REAL=192.0.2.11", "VIPCAST_MARK=10007"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := Target{ID: "x", VIP: vip, Proto: "TCP", Real: real, Mark: 10007, Spec: tc.spec}.normalize()
			if err != nil {
				t.Fatal(err)
			}
			dest, mark := tg.dest()
			if dest.String() != tc.wantDest || mark != tc.wantMark {
				t.Fatalf("dest %s mark %d, want %s %d", dest, mark, tc.wantDest, tc.wantMark)
			}
			env := tg.env()
			for _, v := range tc.wantEnv {
				if !slices.Contains(env, v) {
					t.Errorf("env %v lacks %s", env, v)
				}
			}
		})
	}
}

func TestTargetID(t *testing.T) {
	tests := []struct {
		vip, proto, real, want string
	}{
		{"203.0.113.1:80", "tcp", "192.0.2.11", "203.0.113.1:80/tcp@192.0.2.11"},
		{"[2001:db8:f00::1]:53", "UDP", "2001:db8:0:1::11", "[2001:db8:f00::1]:53/udp@2001:db8:0:1::11"},
	}
	for _, tc := range tests {
		if got := TargetID(netip.MustParseAddrPort(tc.vip), tc.proto, netip.MustParseAddr(tc.real)); got != tc.want {
			t.Errorf("TargetID(%s, %s, %s) = %q, want %q", tc.vip, tc.proto, tc.real, got, tc.want)
		}
	}
}
