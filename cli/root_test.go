package cli

import (
	"strings"
	"testing"
)

// TestPrefixes checks that prefixes of objects and verbs resolve, with the
// documented winner where they are shared.
func TestPrefixes(t *testing.T) {
	runScripts(t, []script{
		{name: "prefix_matching", steps: []string{
			"v l",
			"vi li -l",
			"r l 203.0.113.2:53/udp",
			"r a 203.0.113.2:53/udp 198.51.100.22 --weight 3",
			"r dr 203.0.113.2:53/udp 198.51.100.22",
			"r un 203.0.113.2:53/udp 198.51.100.22",
			"r d 203.0.113.2:53/udp 198.51.100.22",
			"h l",
			"he",
			"n",
			"ri",
			"rel",
			"ver",
			"g",
			"g s 52:54:00:00:00:01",
			"-j v l",
			"! zz",
			"! v zz",
		}},
	})
}

// TestWalkthrough is the seed's walk-through in vipcast's words: add a TCP
// VIP and a real, list them like Katran's -l, watch stats, add three
// mark -> real mappings and list them.
func TestWalkthrough(t *testing.T) {
	runScripts(t, []script{
		{name: "walkthrough", empty: true, steps: []string{
			"vip add 10.200.1.1:80/tcp",
			"real add 10.200.1.1:80/tcp 10.0.0.2 --weight 1",
			"vip list -l",
			"stats -w --count 2 --interval 10ms",
			"hc add 10.0.0.1 --mark 1000",
			"hc add 10.0.0.2 --mark 1001",
			"hc add 10.0.0.3 --mark 1002",
			"hc list",
		}},
	})
}

func TestHelp(t *testing.T) {
	runScripts(t, []script{
		{name: "help", steps: []string{
			"",
			"--help",
			"vip",
			"real --help",
			"help stats",
		}},
	})
}

func TestCompletion(t *testing.T) {
	f := newFake()
	f.seed()
	sock := serve(t, f)
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, stderr, code := runCLI(t, sock, "completion", shell)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "vipcast") {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes", shell, code, stderr, len(stdout))
		}
	}
	// "c" is completion; "real add" completes VIPs from vipcastd, then
	// "real del VIP" the VIP's reals.
	stdout, _, code := runCLI(t, sock, "c", "bash")
	if code != 0 || !strings.Contains(stdout, "bash completion") {
		t.Errorf("c bash: exit %d", code)
	}
	stdout, _, _ = runCLI(t, sock, "__complete", "real", "add", "")
	if !strings.Contains(stdout, "[2001:db8:f00::1]:443/tcp\n") || !strings.Contains(stdout, "203.0.113.2:53/udp\n") {
		t.Errorf("VIP completion:\n%s", stdout)
	}
	stdout, _, _ = runCLI(t, sock, "__complete", "real", "del", "203.0.113.1:80/tcp", "")
	if !strings.Contains(stdout, "198.51.100.13\n") || strings.Contains(stdout, "2001:db8:1::11") {
		t.Errorf("real completion:\n%s", stdout)
	}
}
