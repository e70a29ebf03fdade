package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// script is a golden test: command lines run in order against a fresh fake
// vipcastd, their output recorded in testdata/<name>.golden.
type script struct {
	name string
	// steps are command lines without "vipcast" and --socket, split on
	// spaces; '' is an empty argument and $DIR the socket's directory. A
	// line starting with "! " must fail (exit 1); others must succeed.
	steps []string
	// empty starts from a fake with no VIPs, marks or gateway instead of
	// the seeded one.
	empty bool
	// setup adjusts the fake (and may create files in dir) before the steps.
	setup func(t *testing.T, f *fakeServer, dir string)
	// unchanged checks that the fake's state after the steps is what it was
	// before (for scripts of failing commands).
	unchanged bool
}

// runScripts runs each script as a parallel subtest and compares its
// transcript with the golden file.
func runScripts(t *testing.T, scripts []script) {
	t.Helper()
	for _, s := range scripts {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			if !s.empty {
				f.seed()
			}
			sock := serve(t, f)
			dir := filepath.Dir(sock)
			if s.setup != nil {
				s.setup(t, f, dir)
			}
			before := f.snapshot()
			var transcript strings.Builder
			for _, line := range s.steps {
				wantFail := strings.HasPrefix(line, "! ")
				line = strings.TrimPrefix(line, "! ")
				args := splitArgs(strings.ReplaceAll(line, "$DIR", dir))
				stdout, stderr, code := runCLI(t, sock, args...)
				transcript.WriteString("$ vipcast " + line + "\n")
				transcript.WriteString(stdout)
				if stderr != "" {
					transcript.WriteString("[stderr]\n" + stderr)
				}
				transcript.WriteString("[exit " + strconv.Itoa(code) + "]\n\n")
				if wantFail != (code != 0) {
					t.Errorf("vipcast %s: exit %d; stdout:\n%s\nstderr:\n%s", line, code, stdout, stderr)
				}
			}
			if s.unchanged {
				if after := f.snapshot(); after != before {
					t.Errorf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			}
			got := strings.ReplaceAll(transcript.String(), dir, "$DIR")
			checkGolden(t, s.name, got)
		})
	}
}

// runCLI runs one vipcast command line against the socket, in process.
func runCLI(t *testing.T, sock string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return runCLIContext(ctx, sock, args...)
}

func runCLIContext(ctx context.Context, sock string, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	root := NewRootCommand(&out, &errOut)
	root.SetArgs(append([]string{"--socket", sock}, args...))
	code = Execute(ctx, root)
	return out.String(), errOut.String(), code
}

func splitArgs(line string) []string {
	args := strings.Fields(line)
	for i, a := range args {
		if a == "''" {
			args[i] = ""
		}
	}
	return args
}

// checkGolden compares got with testdata/<name>.golden, or rewrites the
// file under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
