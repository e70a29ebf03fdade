package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"vipcast/api"
)

// Change is the JSON document printed by every command that changes
// vipcastd's state (vip add/del/set, real add/del/set/drain/undrain,
// hc add/del, gateway set). Fields other than command appear only when the
// command is about them.
type Change struct {
	// Command is the command that ran, e.g. "vip add", "real drain".
	Command string `json:"command"`
	// VIP is the VIP changed or whose real changed, e.g. "203.0.113.1:80/tcp".
	VIP string `json:"vip,omitempty"`
	// Flags are the VIP's flags after vip add or vip set.
	Flags *[]string `json:"flags,omitempty"`
	// RingSize is the VIP's Maglev ring size after vip add or vip set
	// (0: vipcastd's default, 65537).
	RingSize *uint32 `json:"ring_size,omitempty"`
	// Real is the real's address (real commands, hc add).
	Real string `json:"real,omitempty"`
	// Weight is the real's weight when the command set it.
	Weight *uint32 `json:"weight,omitempty"`
	// State is the real's state when the command set it: "up", "draining",
	// "down".
	State string `json:"state,omitempty"`
	// Mark is the socket mark (hc add, hc del).
	Mark uint32 `json:"mark,omitempty"`
	// MAC is the gateway MAC after gateway set.
	MAC string `json:"mac,omitempty"`
}

// print writes v as one indented JSON document.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printChange reports a change: the text line for people, or ch as JSON.
func (a *app) printChange(ch Change, text string) error {
	if a.json {
		return a.printJSON(ch)
	}
	_, err := fmt.Fprintln(a.stdout, text)
	return err
}

// table writes aligned columns; rows are tab-separated cells.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error {
	return t.tw.Flush()
}

// orDash shows an empty value as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// humanCount shows a count with SI suffixes: 999, 1.2k, 3.4M.
func humanCount(n uint64) string {
	if n < 1000 {
		return fmt.Sprintf("%d", n)
	}
	return humanFloat(float64(n))
}

// humanFloat shows a rate with SI suffixes: 12, 1.2k, 3.4M.
func humanFloat(f float64) string {
	units := []string{"", "k", "M", "G", "T", "P", "E"}
	i := 0
	for f >= 999.95 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}

// humanBytes shows a byte count in binary units: 512 B, 1.5 KiB, 3.4 MiB.
func humanBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f := float64(n)
	i := 0
	for f >= 1023.95 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// formatVIP shows a VIP key from vipcastd the way vipcast reads it.
func formatVIP(k *api.VIPKey) string {
	addr, err := netip.ParseAddr(k.GetAddress())
	if err != nil || k.GetPort() > 65535 {
		host := k.GetAddress()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return fmt.Sprintf("%s:%d/%s", host, k.GetPort(), k.GetProtocol())
	}
	return vipKey{addr: addr, port: uint16(k.GetPort()), proto: k.GetProtocol()}.String()
}

// compareVIPs orders VIP keys by address (IPv4 first), port, protocol.
func compareVIPs(a, b *api.VIPKey) int {
	return cmp.Or(
		compareAddrs(a.GetAddress(), b.GetAddress()),
		cmp.Compare(a.GetPort(), b.GetPort()),
		cmp.Compare(a.GetProtocol(), b.GetProtocol()),
	)
}

// compareAddrs orders addresses numerically, IPv4 before IPv6, and
// anything unparsable after both, by text.
func compareAddrs(a, b string) int {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	switch {
	case errX == nil && errY == nil:
		return x.Compare(y)
	case errX == nil:
		return -1
	case errY == nil:
		return 1
	default:
		return strings.Compare(a, b)
	}
}

// comparePrefixes orders prefixes like addresses, then by length.
func comparePrefixes(a, b string) int {
	x, errX := netip.ParsePrefix(a)
	y, errY := netip.ParsePrefix(b)
	switch {
	case errX == nil && errY == nil:
		return cmp.Or(x.Addr().Compare(y.Addr()), cmp.Compare(x.Bits(), y.Bits()))
	case errX == nil:
		return -1
	case errY == nil:
		return 1
	default:
		return strings.Compare(a, b)
	}
}

// nonNil makes an absent list print as [] in JSON.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
