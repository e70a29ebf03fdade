package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const etcFile = "../etc/vipcast.toml"

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t *testing.T, name string, data []byte) *Config {
	t.Helper()
	c, err := Parse(name, data)
	if err != nil {
		t.Fatalf("Parse(%s):\n%v", name, err)
	}
	return c
}

// firstDiff names the first exported field in which a and b differ, for
// readable failures of Equal.
func firstDiff(a, b reflect.Value, path string) string {
	if a.Kind() == reflect.Pointer {
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return path
			}
			return ""
		}
		return firstDiff(a.Elem(), b.Elem(), path)
	}
	switch a.Kind() {
	case reflect.Struct:
		if opaque(a.Type()) {
			if a.Interface() != b.Interface() {
				return fmt.Sprintf("%s: %v != %v", path, a.Interface(), b.Interface())
			}
			return ""
		}
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				if d := firstDiff(a.Field(i), b.Field(i), path+"."+f.Name); d != "" {
					return d
				}
			}
		}
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: len %d != %d", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := firstDiff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	default:
		if a.Interface() != b.Interface() {
			return fmt.Sprintf("%s: %v != %v", path, a.Interface(), b.Interface())
		}
	}
	return ""
}

func assertEqual(t *testing.T, got, want *Config) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("configs differ at %s", firstDiff(reflect.ValueOf(got), reflect.ValueOf(want), "Config"))
	}
}

// The shipped file must say exactly what Default says, so the
// documentation cannot drift from the code.
func TestDefaultFileEqualsDefault(t *testing.T) {
	got := mustParse(t, "vipcast.toml", readFile(t, etcFile))
	want := Default()
	want.Interface = "eth0"
	assertEqual(t, got, want)
	if len(got.VIPs) != 0 || len(got.BGP.Peers) != 0 || got.BGP.Enabled() {
		t.Errorf("default file is not inert: %d VIPs, %d peers, BGP enabled %v",
			len(got.VIPs), len(got.BGP.Peers), got.BGP.Enabled())
	}
}

// uncommentExamples turns the "#key = value" and "#[table]" example lines
// of the shipped file into settings.
func uncommentExamples(data []byte) string {
	re := regexp.MustCompile(`(?m)^#(\[|[a-z0-9_]+ = )`)
	return re.ReplaceAllString(string(data), "$1")
}

// The examples in the shipped file (peers, VIPs, options without a
// default) must be valid too.
func TestDefaultFileExamplesParse(t *testing.T) {
	doc := uncommentExamples(readFile(t, etcFile))
	// root_map_path and prog_position are documented for shared mode.
	doc = strings.Replace(doc, `mode = "standalone"`, `mode = "shared"`, 1)
	c := mustParse(t, "vipcast.toml", []byte(doc))
	if len(c.VIPs) != 1 || len(c.VIPs[0].Reals) != 2 || len(c.BGP.Peers) != 1 {
		t.Fatalf("examples not picked up: %d VIPs, %d peers", len(c.VIPs), len(c.BGP.Peers))
	}
	if got := c.VIPs[0].Check(&c.VIPs[0].Reals[0]); got.Type != CheckHTTP || got.Port != 8080 || got.Path != "/healthz" {
		t.Errorf("example real's check = %+v, want http on 8080 /healthz (inherited from [vip.health])", got)
	}
}

// commonKey maps a key path to the path that documents it: per-VIP and
// per-real health tables take the [health] keys, [vip.bgp] the [bgp] ones.
func commonKey(k string) string {
	for _, p := range []string{"vip.real.health.", "vip.health."} {
		if rest, ok := strings.CutPrefix(k, p); ok {
			return "health." + rest
		}
	}
	if rest, ok := strings.CutPrefix(k, "vip.bgp."); ok && rest != "announce" {
		return "bgp." + rest
	}
	return k
}

func keysOf(doc string) map[string]bool {
	keys := map[string]bool{}
	for path := range scanPositions(doc) {
		keys[commonKey(stripIndices(path))] = true
	}
	return keys
}

// Every key the decoder knows is set in testdata/full.toml and documented
// in etc/vipcast.toml.
func TestSchemaCoverage(t *testing.T) {
	full := readFile(t, "testdata/full.toml")
	schema := map[string]bool{}
	if _, err := parse("full.toml", full, schema); err != nil {
		t.Fatal(err)
	}
	if len(schema) < 100 {
		t.Fatalf("schema has only %d keys; recording is broken", len(schema))
	}
	inFull := keysOf(string(full))
	inEtc := keysOf(uncommentExamples(readFile(t, etcFile)))
	for k := range schema {
		if !inFull[commonKey(k)] {
			t.Errorf("testdata/full.toml does not set %s", k)
		}
		if !inEtc[commonKey(k)] {
			t.Errorf("etc/vipcast.toml does not document %s", k)
		}
	}
}

func u32(v uint32) *uint32 { return &v }

func TestFullExample(t *testing.T) {
	got := mustParse(t, "full.toml", readFile(t, "testdata/full.toml"))
	health := HealthCheck{
		Type:               CheckHTTP,
		Port:               8080,
		Path:               "/healthz",
		Method:             "HEAD",
		Host:               "lb.example.net",
		ExpectStatus:       []int{200, 204},
		BodyContains:       "ok",
		SNI:                "lb.example.net",
		InsecureSkipVerify: true,
		Payload:            "ping",
		ExpectReply:        true,
		Command:            []string{"/usr/local/bin/check", "--quick"},
		Direct:             true,
		MoveFlowsOnDown:    true,
		Interval:           2 * time.Second,
		Timeout:            500 * time.Millisecond,
		Rise:               3,
		Fall:               5,
		Jitter:             0.2,
	}
	vip0Health := health
	vip0Health.Type, vip0Health.Port, vip0Health.Interval = CheckTCP, 0, 5*time.Second
	real1Health := vip0Health
	real1Health.Type, real1Health.Fall = CheckICMP, 2
	route := Route{
		Announce:         true,
		MinHealthy:       2,
		Communities:      []Community{65000<<16 | 100, 0xFFFFFF01},
		LargeCommunities: []LargeCommunity{{4200000001, 1, 2}},
		MED:              u32(50),
		LocalPref:        u32(150),
		WhenUnhealthy:    UnhealthyDeprioritize,
	}
	want := &Config{
		Interface:       "ens1f0",
		Mode:            ModeShared,
		RootMapPath:     "/sys/fs/bpf/vipcast/root_ens1f0",
		ProgPosition:    2,
		XDPMode:         XDPAuto,
		GatewayMAC:      net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x35, 0x02},
		ForwardingCores: []int{0, 2, 4, 6},
		NUMANodes:       []int{0, 0, 1, 1},
		LRUSize:         2_000_000,
		FallbackLRUSize: 131072,
		MaxVIPs:         64,
		MaxReals:        1024,
		TunnelMTU:       9000,
		TunnelSourceV4:  netip.MustParsePrefix("10.255.0.0/16"),
		TunnelSourceV6:  netip.MustParsePrefix("fd00:1::/96"),
		ICMPTooBig:      false,
		HCForwarding:    false,
		HCSourceV4:      netip.MustParseAddr("192.0.2.10"),
		HCSourceV6:      netip.MustParseAddr("2001:db8::10"),
		HCMarks:         MarkRange{5000, 5999},
		API:             API{Socket: "/run/vipcast/api.sock", SocketMode: 0o600, SocketGroup: "lbadmin"},
		Metrics:         Metrics{Listen: netip.MustParseAddrPort("192.0.2.10:9641"), AllowRemote: true},
		Health:          health,
		BGP: BGP{
			ASN:             4200000001,
			RouterID:        netip.MustParseAddr("192.0.2.1"),
			ListenPort:      1790,
			APIListen:       ListenAddr{Unix: "/run/vipcast/gobgp.sock"},
			AllowRemoteAPI:  true,
			GracefulRestart: false,
			RestartTime:     300 * time.Second,
			StartupGrace:    time.Minute,
			AnnouncePolicy:  AnyService,
			ReannounceDelay: 5 * time.Second,
			DrainTime:       30 * time.Second,
			DrainOnShutdown: true,
			Route:           route,
			Deprioritize:    Deprioritize{MED: u32(1000), Communities: []Community{65000<<16 | 666}, ASPathPrepend: 3},
			Peers: []Peer{{
				Address:     netip.MustParseAddr("192.0.2.254"),
				ASN:         65000,
				Description: "core router A",
				Password:    "s3cret",
				MultihopTTL: 2,
				HoldTime:    30 * time.Second,
				Keepalive:   10 * time.Second,
				Passive:     true,
				Families:    []Family{FamilyIPv4, FamilyIPv6},
				Port:        1179,
			}, {
				Address:   netip.MustParseAddr("2001:db8::fe"),
				ASN:       65000,
				HoldTime:  9 * time.Second,
				Keepalive: 3 * time.Second, // hold_time / 3
				Families:  []Family{FamilyIPv6},
				Port:      179,
			}},
		},
		VIPs: []VIP{{
			Address:  netip.MustParseAddr("203.0.113.1"),
			Port:     80,
			Protocol: TCP,
			Flags:    VIPFlags{NoSrcPort: true, LRUBypass: true},
			RingSize: 1021,
			Health:   vip0Health,
			BGP: Route{
				Announce:      true,
				MinHealthy:    1,
				Communities:   []Community{65000<<16 | 200},
				MED:           u32(10),
				LocalPref:     u32(300),
				WhenUnhealthy: UnhealthyWithdraw,
			},
			Reals: []Real{
				{Address: netip.MustParseAddr("198.51.100.11"), Weight: 10, State: RealUp},
				{Address: netip.MustParseAddr("2001:db8:1::12"), Weight: 0, State: RealDrain, Health: &real1Health},
			},
		}, {
			Address:  netip.MustParseAddr("2001:db8:f00::1"),
			Port:     0,
			Protocol: UDP,
			Flags:    VIPFlags{DportOnly: true},
			RingSize: DefaultRingSize,
			Health:   health,
			BGP:      route,
			Reals: []Real{
				{Address: netip.MustParseAddr("2001:db8:1::21"), Weight: 1, State: RealDisabled},
				{Address: netip.MustParseAddr("2001:db8:1::22"), Weight: 65535, State: RealUp},
			},
		}},
	}
	assertEqual(t, got, want)

	if c := got.VIPs[0].Check(&got.VIPs[0].Reals[0]); c.Type != CheckTCP {
		t.Errorf("real without a health table checked by %q, want the VIP's tcp", c.Type)
	}
	if c := got.VIPs[0].Check(&got.VIPs[0].Reals[1]); c.Type != CheckICMP {
		t.Errorf("real with a health table checked by %q, want its own icmp", c.Type)
	}
}

func TestEqual(t *testing.T) {
	full := readFile(t, "testdata/full.toml")
	base := mustParse(t, "full.toml", full)

	// Layout does not matter: the same settings moved down and re-indented.
	moved := mustParse(t, "other.toml", []byte("\n\n# moved\n"+strings.ReplaceAll(string(full), "\n  ", "\n")))
	if !base.Equal(moved) {
		t.Errorf("Equal depends on positions: %s", firstDiff(reflect.ValueOf(base), reflect.ValueOf(moved), "Config"))
	}

	mutations := map[string]func(c *Config){
		"interface":           func(c *Config) { c.Interface = "eth1" },
		"gateway mac":         func(c *Config) { c.GatewayMAC[5]++ },
		"numa node":           func(c *Config) { c.NUMANodes[3] = 0 },
		"tunnel prefix":       func(c *Config) { c.TunnelSourceV4 = netip.MustParsePrefix("10.254.0.0/16") },
		"health command":      func(c *Config) { c.Health.Command[1] = "--slow" },
		"bgp med":             func(c *Config) { *c.BGP.Route.MED = 51 },
		"bgp local_pref nil":  func(c *Config) { c.BGP.Route.LocalPref = nil },
		"peer family":         func(c *Config) { c.BGP.Peers[0].Families = c.BGP.Peers[0].Families[:1] },
		"vip flags":           func(c *Config) { c.VIPs[0].Flags.LRUBypass = false },
		"real weight":         func(c *Config) { c.VIPs[0].Reals[0].Weight = 11 },
		"real health":         func(c *Config) { c.VIPs[0].Reals[1].Health.Fall = 3 },
		"real health removed": func(c *Config) { c.VIPs[0].Reals[1].Health = nil },
		"vip removed":         func(c *Config) { c.VIPs = c.VIPs[:1] },
	}
	for name, mutate := range mutations {
		c := base.Clone()
		mutate(c)
		if base.Equal(c) || c.Equal(base) {
			t.Errorf("%s: change not seen by Equal", name)
		}
		if !base.Equal(moved) {
			t.Errorf("%s: Clone shares state with the original", name)
		}
	}

	a, b := Default(), Default()
	a.ForwardingCores, b.ForwardingCores = nil, []int{}
	if !a.Equal(b) {
		t.Error("nil and empty lists differ")
	}
	if !base.VIPs[0].Equal(&moved.VIPs[0]) || base.VIPs[0].Equal(&base.VIPs[1]) {
		t.Error("VIP.Equal wrong")
	}
	if !base.VIPs[0].Reals[0].Equal(&moved.VIPs[0].Reals[0]) || base.VIPs[0].Reals[0].Equal(&base.VIPs[0].Reals[1]) {
		t.Error("Real.Equal wrong")
	}
}

// sharedMemory reports the first slice or pointer that a and b share.
func sharedMemory(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return sharedMemory(a.Elem(), b.Elem(), path)
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if s := sharedMemory(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); s != "" {
				return s
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				if s := sharedMemory(a.Field(i), b.Field(i), path+"."+f.Name); s != "" {
					return s
				}
			}
		}
	}
	return ""
}

func TestCloneIsDeep(t *testing.T) {
	c := mustParse(t, "full.toml", readFile(t, "testdata/full.toml"))
	n := c.Clone()
	if !c.Equal(n) {
		t.Fatal("clone differs")
	}
	if s := sharedMemory(reflect.ValueOf(c), reflect.ValueOf(n), "Config"); s != "" {
		t.Errorf("Clone shares %s", s)
	}
	v := c.VIPs[0].Clone()
	if s := sharedMemory(reflect.ValueOf(&c.VIPs[0]), reflect.ValueOf(&v), "VIP"); s != "" {
		t.Errorf("VIP.Clone shares %s", s)
	}
}

func TestVIPKey(t *testing.T) {
	c := mustParse(t, "full.toml", readFile(t, "testdata/full.toml"))
	keys := []string{c.VIPs[0].Key().String(), c.VIPs[1].Key().String()}
	if want := []string{"203.0.113.1:80/tcp", "[2001:db8:f00::1]:0/udp"}; !slices.Equal(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
	set := map[VIPKey]bool{c.VIPs[0].Key(): true}
	moved := c.Clone()
	moved.VIPs[0].RingSize = 65537
	if !set[moved.VIPs[0].Key()] {
		t.Error("changing a non-key field changed the key")
	}
	if TCP.Number() != 6 || UDP.Number() != 17 {
		t.Error("protocol numbers")
	}
}

func TestLoad(t *testing.T) {
	c, err := Load("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Interface != "ens1f0" {
		t.Errorf("interface = %q", c.Interface)
	}

	_, err = Load("testdata/missing.toml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("interface = \"eth0\"\nlru_size = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ":2:1: lru_size: must be 1..268435456, got 0"; err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %s", err, want)
	}
}

// A Config changed in code is validated with the same rules; what came
// from the file keeps its position, what did not has none.
func TestValidateInCode(t *testing.T) {
	err := Default().Validate()
	if want := "interface: required: the network interface the balancer attaches to"; err == nil || err.Error() != want {
		t.Errorf("Default().Validate() = %v, want %s", err, want)
	}

	c := mustParse(t, "full.toml", readFile(t, "testdata/full.toml"))
	if err := c.Validate(); err != nil {
		t.Fatalf("parsed config does not re-validate: %v", err)
	}
	route := cloneRoute(c.BGP.Route)
	route.MinHealthy = 1
	c.VIPs = append(c.VIPs, VIP{
		Address:  netip.MustParseAddr("2001:db8:f00::2"),
		Port:     443,
		Protocol: TCP,
		RingSize: DefaultRingSize,
		Health:   c.Health,
		BGP:      route,
		Reals:    []Real{{Address: netip.MustParseAddr("198.51.100.30"), Weight: 1, State: RealUp}},
	})
	c.VIPs[0].Reals[0].Weight = 70000
	err = c.Validate()
	// Problems without a position come first.
	want := `vip[2].real[0].address: an IPv6 VIP ("2001:db8:f00::2") needs IPv6 reals (IPv6 cannot be carried in IPv4), got "198.51.100.30"` + "\n" +
		"full.toml:120:3: vip[0].real[0].weight: must be 0..65535, got 70000"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Fatalf("want a *ValidationError with 2 problems, got %#v", err)
	}
	if fe := ve.Errors[1]; fe.File != "full.toml" || fe.Field != "vip[0].real[0].weight" || fe.Line != 120 || fe.Column != 3 ||
		fe.Message != "must be 0..65535" || fe.Value != "70000" {
		t.Errorf("file FieldError = %+v", fe)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File != "" || fe.Line != 0 || fe.Field != "vip[2].real[0].address" {
		t.Errorf("errors.As finds %+v, want the code-built VIP's problem", fe)
	}
}
