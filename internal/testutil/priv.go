// Package testutil holds helpers shared by vipcast's tests.
package testutil

import (
	"os"
	"testing"
)

// RequirePrivileged stops a test that needs root (BPF, netns). Outside CI
// it skips; under CI=true it fails, so a CI run can never pass by silently
// running nothing.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (BPF programs, network namespaces) and CI=true forbids skipping it")
	}
	t.Skip("needs root (BPF programs, network namespaces); run as root or in CI")
}
