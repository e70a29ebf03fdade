#!/usr/bin/env bash
# Builds dist/vipcast_<version>-1_<arch>.deb with nfpm (packaging/nfpm.yaml).
# Idempotent: dist/build/ and earlier vipcast .debs in dist/ are replaced.
#
# The packaged binaries are built here, from the same tree and with the same
# version string as `make build`, but as release builds the way Debian
# builds C programs:
#   -buildmode=pie, -linkmode=external, -z relro -z now
#       position-independent with full RELRO, so ASLR and read-only
#       relocations cover a root daemon that parses BGP messages and check
#       replies;
#   cgo on, linked against libc.so.6
#       the package's libc6 dependency is computed by dpkg-shlibdeps, as
#       for any Debian binary (a static Go binary would need lintian
#       overrides: lintian exempts Go only through a source package's
#       Build-Depends, which an nfpm build has not);
#   -trimpath, -s -w
#       no build paths, symbol table or DWARF, as Debian ships binaries
#       after dh_strip (the Go module list stays: `go version -m`).
#
# Environment: VERSION (the git describe string embedded in the binaries,
# as in the Makefile), GO (default go), CC (default gcc, else clang).
# Builds for the host's architecture (dpkg-shlibdeps reads the host's
# libraries).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
VIPCAST_DEB_VERSION=$(scripts/deb-version.sh "$VERSION")
VIPCAST_GOARCH=$($GO env GOARCH)
if [ -z "${CC:-}" ]; then
	CC=$(command -v gcc || command -v clang || true)
fi
if [ -z "$CC" ]; then
	echo "build-deb: no C compiler (gcc or clang) for the cgo/PIE release build" >&2
	exit 1
fi
export CC

# dpkg-shlibdeps wants a debian/control and the files in a package tree
# (a directory with a DEBIAN/ subdirectory); the staging tree is laid out
# that way, though only nfpm writes the package.
build=dist/build
stage=$build/debian/vipcast
rm -rf "$build" dist/stage
rm -f dist/vipcast_*.deb
mkdir -p "$stage/usr/sbin" "$stage/usr/bin" "$stage/usr/share/man/man8" \
	"$stage/usr/share/bash-completion/completions" \
	"$stage/usr/share/zsh/vendor-completions" \
	"$stage/usr/share/fish/vendor_completions.d" \
	"$stage/usr/share/doc/vipcast" "$stage/DEBIAN"

echo "build-deb: vipcast $VERSION -> Debian version $VIPCAST_DEB_VERSION-1 ($VIPCAST_GOARCH)"
ldflags="-s -w -linkmode=external -extldflags '-Wl,-z,relro,-z,now' -X vipcast/internal/version.Version=$VERSION"
CGO_ENABLED=1 $GO build -trimpath -buildmode=pie -ldflags "$ldflags" -o "$stage/usr/sbin/vipcastd" ./cmd/vipcastd
CGO_ENABLED=1 $GO build -trimpath -buildmode=pie -ldflags "$ldflags" -o "$stage/usr/bin/vipcast" ./cmd/vipcast

printf 'Source: vipcast\n\nPackage: vipcast\nArchitecture: any\n' >"$build/debian/control"
shlibs=$(cd "$build" && dpkg-shlibdeps -O debian/vipcast/usr/sbin/vipcastd debian/vipcast/usr/bin/vipcast)
VIPCAST_SHLIBS_DEPENDS=${shlibs#shlibs:Depends=}
case "$VIPCAST_SHLIBS_DEPENDS" in
libc6*) ;;
*)
	echo "build-deb: unexpected dpkg-shlibdeps output: $shlibs" >&2
	exit 1
	;;
esac
export VIPCAST_DEB_VERSION VIPCAST_GOARCH VIPCAST_SHLIBS_DEPENDS

# Completions come from the CLI itself.
"$stage/usr/bin/vipcast" completion bash >"$stage/usr/share/bash-completion/completions/vipcast"
"$stage/usr/bin/vipcast" completion zsh >"$stage/usr/share/zsh/vendor-completions/_vipcast"
"$stage/usr/bin/vipcast" completion fish >"$stage/usr/share/fish/vendor_completions.d/vipcast.fish"

# Man pages and changelog: gzip -9n (no name or timestamp in the header),
# as Debian policy and lintian want.
for page in vipcastd.8 vipcast.8; do
	sed "s/@VERSION@/$VIPCAST_DEB_VERSION/" "packaging/$page" | gzip -9n >"$stage/usr/share/man/man8/$page.gz"
done

# One changelog entry for the version being built, dated by HEAD's commit
# (a rebuild of the same commit gives the same file).
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
	echo "vipcast ($VIPCAST_DEB_VERSION-1) unstable; urgency=medium"
	echo
	echo "  * Build of vipcast $VERSION (git commit $commit)."
	echo "    See the git history for the changes."
	echo
	echo " -- vipcast maintainers <vipcast@example.org>  $date"
} | gzip -9n >"$stage/usr/share/doc/vipcast/changelog.Debian.gz"

# Package metadata timestamps follow the commit too.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

$GO tool nfpm pkg --packager deb --config packaging/nfpm.yaml --target dist/
ls -l dist/vipcast_*.deb
