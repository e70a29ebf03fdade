// Package version carries the build's version, set at link time by the
// Makefile (-X vipcast/internal/version.Version=...).
package version

import "runtime/debug"

// Version is the release (git describe) this binary was built from.
var Version = "dev"

// String is Version, or the module version when built with `go install`.
func String() string {
	if Version != "dev" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return Version
}
