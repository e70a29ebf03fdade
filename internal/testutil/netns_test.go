package testutil

import (
	"net"
	"strings"
	"testing"
)

func TestNamespacesAndVeth(t *testing.T) {
	id := RunID()
	a, b := NewNS(t, id, "a"), NewNS(t, id, "b")
	Veth(t, a, "eth0", b, "eth0")
	a.MustExec(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
	b.MustExec(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	out := a.MustExec(t, "ping", "-c", "1", "-W", "2", "192.0.2.2")
	if !strings.Contains(string(out), "1 received") {
		t.Fatalf("ping across the veth: %s", out)
	}
	var names []string
	if err := b.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "lo,eth0" {
		t.Fatalf("interfaces inside b: %v, want lo,eth0", names)
	}
}
