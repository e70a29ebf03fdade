package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConnectionErrors covers a vipcastd that is absent, dead, slow, or
// whose socket the user may not open, and global flag errors.
func TestConnectionErrors(t *testing.T) {
	runScripts(t, []script{
		{name: "unreachable", steps: []string{
			"! vip list --socket $DIR/missing.sock",
			"! vip add 203.0.113.9:80/tcp --socket $DIR/missing.sock -j",
			"! --socket $DIR/dead.sock stats",
			"! vip list --socket $DIR/not-a-dir/x.sock",
			"! --socket '' vip list",
			"! --timeout 0s vip list",
		}, setup: func(t *testing.T, _ *fakeServer, dir string) {
			// A socket file nobody listens on: vipcastd died.
			lis, err := net.Listen("unix", filepath.Join(dir, "dead.sock"))
			if err != nil {
				t.Fatal(err)
			}
			lis.(*net.UnixListener).SetUnlinkOnClose(false)
			lis.Close()
			if err := os.WriteFile(filepath.Join(dir, "not-a-dir"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "timeout",
			setup: func(_ *testing.T, f *fakeServer, _ string) { f.delay = 5 * time.Second },
			steps: []string{"! vip list --timeout 50ms"}},
	})
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may open any socket")
	}
	f := newFake()
	sock := serve(t, f)
	if err := os.Chmod(sock, 0); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, sock, "vip", "list")
	want := "vipcast: permission denied on socket " + sock + ": run as root or as a member of the socket's group\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want %q", code, stderr, want)
	}
}

func TestSocketFromEnvironment(t *testing.T) {
	f := newFake()
	f.seed()
	sock := serve(t, f)
	t.Setenv(SocketEnv, sock)
	var out, errOut strings.Builder
	root := NewRootCommand(&out, &errOut)
	root.SetArgs([]string{"hc", "list"})
	if code := Execute(t.Context(), root); code != 0 || !strings.Contains(out.String(), "1000  198.51.100.11") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	// --socket wins over the environment.
	out.Reset()
	errOut.Reset()
	root = NewRootCommand(&out, &errOut)
	root.SetArgs([]string{"--socket", filepath.Join(t.TempDir(), "other.sock"), "hc", "list"})
	if code := Execute(t.Context(), root); code != 1 || !strings.Contains(errOut.String(), "other.sock: no such file") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
