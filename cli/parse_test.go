package cli

import (
	"slices"
	"strings"
	"testing"
)

func TestParseVIPKey(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"203.0.113.1:80/tcp", "203.0.113.1:80/tcp"},
		{"203.0.113.1:0/udp", "203.0.113.1:0/udp"},
		{"203.0.113.1:65535/TCP", "203.0.113.1:65535/tcp"},
		{"[2001:db8:f00::1]:443/tcp", "[2001:db8:f00::1]:443/tcp"},
		{"[2001:DB8:F00:0::1]:443/udp", "[2001:db8:f00::1]:443/udp"},
		{"[::ffff:203.0.113.1]:80/tcp", "[::ffff:203.0.113.1]:80/tcp"},
	} {
		k, err := parseVIPKey(tc.in)
		if err != nil || k.String() != tc.want {
			t.Errorf("parseVIPKey(%q) = %v, %v; want %s", tc.in, k, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in, why string
	}{
		{"203.0.113.1:80", "missing /PROTO"},
		{"203.0.113.1:80/", `protocol "" must be tcp or udp`},
		{"203.0.113.1:80/icmp", `protocol "icmp" must be tcp or udp`},
		{"203.0.113.1/tcp", "missing :PORT"},
		{"2001:db8::1:443/tcp", "needs brackets"},
		{"[2001:db8::1]/tcp", "missing :PORT"},
		{"[2001:db8::1:443/tcp", "missing ']' in address"},
		{"203.0.113.1:-1/tcp", `port "-1" must be a number in 0..65535`},
		{"203.0.113.1:99999/tcp", `port "99999" must be`},
		{"host.example:80/tcp", `address "host.example" is not an IP address`},
		{"[fe80::1%eth0]:80/tcp", "has a zone"},
		{"/tcp", "missing ADDR:PORT"},
	} {
		_, err := parseVIPKey(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
			t.Errorf("parseVIPKey(%q) error %v; want it to name the value and say %q", tc.in, err, tc.why)
		}
	}
}

func TestParseReal(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.11":    "",
		"2001:DB8:1::11":   "",
		"198.51.100.11:80": "give the address only",
		"[2001:db8::1]:80": "give the address only",
		"fe80::1%eth0":     "zones are not used",
		"real1":            "not an IP address",
		"":                 "not an IP address",
	} {
		_, err := parseReal(in)
		if (err == nil) != (want == "") || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("parseReal(%q) = %v; want %q", in, err, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	got, err := parseFlags([]string{"LRU_bypass, no_src_port", "lru_bypass", ""})
	if err != nil || !slices.Equal(got, []string{"lru_bypass", "no_src_port"}) {
		t.Errorf("got %v, %v", got, err)
	}
	if got, err := parseFlags(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("no flags: got %#v, %v; want an empty list", got, err)
	}
	if _, err := parseFlags([]string{"no_src_port,bogus"}); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("bogus flag: %v", err)
	}
}

func TestUintFlags(t *testing.T) {
	var v uint32
	for _, tc := range []struct {
		flag *uintFlag
		in   string
		ok   bool
		want uint32
	}{
		{weightFlag(&v), "0", true, 0},
		{weightFlag(&v), "65535", true, 65535},
		{weightFlag(&v), "65536", false, 0},
		{weightFlag(&v), "-1", false, 0},
		{weightFlag(&v), "0x10", false, 0},
		{ringSizeFlag(&v), "65537", true, 65537},
		{ringSizeFlag(&v), "3", true, 3},
		{ringSizeFlag(&v), "2", false, 0},
		{ringSizeFlag(&v), "65535", false, 0},
		{ringSizeFlag(&v), "16777259", false, 0},
		{markFlag(&v), "0x3e8", true, 1000},
		{markFlag(&v), "4294967295", true, 4294967295},
		{markFlag(&v), "0", false, 0},
	} {
		v = 0
		err := tc.flag.Set(tc.in)
		if (err == nil) != tc.ok || tc.ok && v != tc.want {
			t.Errorf("%s.Set(%q) = %v, value %d", tc.flag.typ, tc.in, err, v)
		}
	}
}

func TestParseMAC(t *testing.T) {
	for in, want := range map[string]string{
		"52:54:00:12:35:02": "52:54:00:12:35:02",
		"52-54-00-AB-CD-EF": "52:54:00:ab:cd:ef",
		"5254.00ab.cdef":    "52:54:00:ab:cd:ef",
		"ff:ff:ff:ff:ff:ff": "",
		"33:33:00:00:00:01": "",
		"52:54:00:12:35":    "",
		"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01": "",
	} {
		got, err := parseMAC(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("parseMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
