package cli

import (
	"bytes"
	"slices"
	"testing"

	"github.com/spf13/cobra"

	"vipcast/api"
)

func TestHumanUnits(t *testing.T) {
	for n, want := range map[uint64]string{
		0:             "0",
		999:           "999",
		1000:          "1.0k",
		1234:          "1.2k",
		999_949:       "999.9k",
		999_950:       "1.0M",
		3_400_000:     "3.4M",
		5_600_000_000: "5.6G",
	} {
		if got := humanCount(n); got != want {
			t.Errorf("humanCount(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[uint64]string{
		0:             "0 B",
		1023:          "1023 B",
		1024:          "1.0 KiB",
		1536:          "1.5 KiB",
		3_565_158:     "3.4 MiB",
		1 << 30:       "1.0 GiB",
		1<<40 + 1<<39: "1.5 TiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSortOrder(t *testing.T) {
	keys := []*api.VIPKey{
		{Address: "2001:db8::1", Port: 80, Protocol: "tcp"},
		{Address: "203.0.113.10", Port: 80, Protocol: "tcp"},
		{Address: "203.0.113.9", Port: 443, Protocol: "tcp"},
		{Address: "203.0.113.9", Port: 80, Protocol: "udp"},
		{Address: "203.0.113.9", Port: 80, Protocol: "tcp"},
	}
	slices.SortFunc(keys, compareVIPs)
	var got []string
	for _, k := range keys {
		got = append(got, formatVIP(k))
	}
	want := []string{"203.0.113.9:80/tcp", "203.0.113.9:80/udp", "203.0.113.9:443/tcp", "203.0.113.10:80/tcp", "[2001:db8::1]:80/tcp"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	prefixes := []string{"2001:db8::/64", "203.0.113.1/32", "198.51.100.0/24", "198.51.100.0/25"}
	slices.SortFunc(prefixes, comparePrefixes)
	if want := []string{"198.51.100.0/24", "198.51.100.0/25", "203.0.113.1/32", "2001:db8::/64"}; !slices.Equal(prefixes, want) {
		t.Errorf("prefixes %v, want %v", prefixes, want)
	}
}

func TestPrefixAliases(t *testing.T) {
	noop := func(*cobra.Command, []string) {}
	root := &cobra.Command{Use: "x"}
	for _, name := range []string{"version", "vip", "real", "reload", "rib"} {
		root.AddCommand(&cobra.Command{Use: name, Run: noop})
	}
	addPrefixAliases(root, []string{"vip", "real"})
	for in, want := range map[string]string{
		"v": "vip", "vi": "vip", "ve": "version", "r": "real", "re": "real",
		"rel": "reload", "ri": "rib", "version": "version",
	} {
		cmd, _, err := root.Find([]string{in})
		if err != nil || cmd.Name() != want {
			t.Errorf("%q found %v (%v), want %s", in, cmd.Name(), err, want)
		}
	}
	// The formatted help shows no alias list.
	var out bytes.Buffer
	r := NewRootCommand(&out, &out)
	r.SetArgs([]string{"vip", "--help"})
	if Execute(t.Context(), r) != 0 || bytes.Contains(out.Bytes(), []byte("Aliases")) {
		t.Errorf("help:\n%s", out.String())
	}
}
