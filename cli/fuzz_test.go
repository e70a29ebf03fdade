package cli

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The CLI's argument parsers never panic, and whatever they accept
// round-trips: formatting the value and parsing it again gives the same
// value (and the same text).

func FuzzParseVIPKey(f *testing.F) {
	for _, s := range []string{
		"203.0.113.1:80/tcp", "203.0.113.1:0/udp", "203.0.113.1:65535/TCP", "[2001:db8:f00::1]:443/tcp",
		"[2001:DB8:F00:0::1]:443/udp", "[::ffff:203.0.113.1]:80/tcp", "[1.2.3.4]:80/tcp", "203.0.113.1:080/tcp",
		"203.0.113.1:80", "203.0.113.1/tcp", "2001:db8::1:443/tcp", "[2001:db8::1:443/tcp", "203.0.113.1:-1/tcp",
		"[fe80::1%eth0]:80/tcp", "/tcp", ":80/tcp", "[]:80/tcp", "203.0.113.1:80/tcp/udp", "\x00:1/udp",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := parseVIPKey(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("parseVIPKey(%q): error %q does not name the value", s, err)
			}
			return
		}
		if !k.addr.IsValid() || k.addr.Zone() != "" || (k.proto != "tcp" && k.proto != "udp") {
			t.Fatalf("parseVIPKey(%q) accepted %#v", s, k)
		}
		text := k.String()
		again, err := parseVIPKey(text)
		if err != nil || again != k || again.String() != text {
			t.Fatalf("parseVIPKey(%q) = %s, which parses back as %v, %v", s, text, again, err)
		}
		// What the daemon receives names the same service.
		a := k.api()
		if addr, err := netip.ParseAddr(a.GetAddress()); err != nil || addr != k.addr || a.GetPort() != uint32(k.port) || a.GetProtocol() != k.proto {
			t.Fatalf("parseVIPKey(%q): API key %v does not round-trip (%v)", s, a, err)
		}
	})
}

// FuzzParseValues feeds one string to every other argument parser: reals,
// marks, the numeric flags, --flags lists and MACs.
func FuzzParseValues(f *testing.F) {
	for _, s := range []string{
		"198.51.100.11", "2001:DB8:1::11", "198.51.100.11:80", "fe80::1%eth0", "::ffff:1.2.3.4", "",
		"0", "1", "65535", "65536", "-1", "0x10", "0x3e8", "4294967295", "4294967296", "65537", "16777259", "+5", "1_000",
		"no_src_port", "LRU_bypass, no_src_port\nlru_bypass", "dport_only,,", "bogus", "-",
		"52:54:00:12:35:02", "52-54-00-AB-CD-EF", "5254.00ab.cdef", "ff:ff:ff:ff:ff:ff", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := parseReal(s); err == nil {
			if !a.IsValid() || a.Zone() != "" {
				t.Fatalf("parseReal(%q) accepted %v", s, a)
			}
			if again, err := parseReal(a.String()); err != nil || again != a {
				t.Fatalf("parseReal(%q) = %s, which parses back as %v, %v", s, a, again, err)
			}
		}
		if m, err := parseMark(s); err == nil {
			if m == 0 {
				t.Fatalf("parseMark(%q) accepted mark 0", s)
			}
			if again, err := parseMark(strconv.FormatUint(uint64(m), 10)); err != nil || again != m {
				t.Fatalf("parseMark(%q) = %d, which parses back as %d, %v", s, m, again, err)
			}
		}
		for _, mk := range []func(*uint32) *uintFlag{weightFlag, ringSizeFlag, markFlag} {
			var v uint32 = 7 // a failed Set must leave it alone
			fl := mk(&v)
			if err := fl.Set(s); err != nil {
				if v != 7 {
					t.Fatalf("%s.Set(%q) failed (%v) but changed the value to %d", fl.typ, s, err, v)
				}
				if err.Error() != fl.want {
					t.Fatalf("%s.Set(%q) error %q, want %q", fl.typ, s, err, fl.want)
				}
				continue
			}
			n := uint64(v)
			if n < fl.min || n > fl.max || (fl.check != nil && !fl.check(n)) {
				t.Fatalf("%s.Set(%q) accepted %d, outside what it allows", fl.typ, s, v)
			}
			var w uint32
			if err := mk(&w).Set(fl.String()); err != nil || w != v {
				t.Fatalf("%s.Set(%q) = %d, formatted %q, which parses back as %d, %v", fl.typ, s, v, fl.String(), w, err)
			}
		}
		values := strings.Split(s, "\n")
		if flags, err := parseFlags(values); err == nil {
			if !slices.IsSorted(flags) || len(slices.Compact(slices.Clone(flags))) != len(flags) {
				t.Fatalf("parseFlags(%q) = %v: not sorted and unique", values, flags)
			}
			for _, fl := range flags {
				if !slices.Contains(vipFlags(), fl) {
					t.Fatalf("parseFlags(%q) accepted unknown flag %q", values, fl)
				}
			}
			for _, again := range [][]string{flags, {strings.Join(flags, ",")}} {
				if got, err := parseFlags(again); err != nil || !slices.Equal(got, flags) {
					t.Fatalf("parseFlags(%q) = %v, which parses back (%q) as %v, %v", values, flags, again, got, err)
				}
			}
		} else if !strings.Contains(err.Error(), "known flags are") {
			t.Fatalf("parseFlags(%q) error %q does not list the known flags", values, err)
		}
		if mac, err := parseMAC(s); err == nil {
			hw, perr := net.ParseMAC(mac)
			if perr != nil || len(hw) != 6 || hw[0]&1 != 0 {
				t.Fatalf("parseMAC(%q) accepted %q", s, mac)
			}
			if again, err := parseMAC(mac); err != nil || again != mac {
				t.Fatalf("parseMAC(%q) = %q, which parses back as %q, %v", s, mac, again, err)
			}
		}
	})
}
