#!/usr/bin/env bash
# The package's tests, run by `make test` (and `make test-deb`):
#   maintainer scripts: sh -n, and their behaviour per dpkg action
#     (scripts/test-maintscripts.sh);
#   version mapping (scripts/deb-version.sh);
#   build the .deb (scripts/build-deb.sh);
#   lintian --fail-on error,warning (overrides: packaging/lintian-overrides),
#     and no unused override;
#   dpkg-deb -c against the expected list below, and the control fields;
#   dpkg --root install into a scratch root: unit enabled, shipped config
#     passes vipcastd --check-config, vipcast version prints the version,
#     man pages render without warnings; a modified conffile survives a
#     reinstall; purge leaves nothing;
#   systemd-analyze verify on the unit (and its security exposure);
#   the packaged daemon run as the unit runs it, with the unit's
#     capabilities, its sandbox settings audited (scripts/test-deb-run.sh).
# Fails (exit 1) if any check fails; idempotent (everything in a temp dir
# or dist/). Root-only parts are skipped when not root, except under
# CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export VERSION GO

passed=0
failed=0
skipped=0
ok() {
	echo "ok   deb: $1"
	passed=$((passed + 1))
}
fail() {
	echo "FAIL deb: $1"
	failed=$((failed + 1))
}
skip() {
	if [ "${CI:-}" = true ]; then
		fail "$1 (cannot run, and CI=true)"
	else
		echo "skip deb: $1"
		skipped=$((skipped + 1))
	fi
}
is_root() { [ "$(id -u)" = 0 ]; }

# Tools: lintian and dpkg-dev come with scripts/deps.sh; systemd-analyze,
# socat (notify socket), strace (sandbox audit), setpriv/unshare
# (util-linux) and a C compiler (cgo/PIE release build) are installed here
# when missing.
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v socat >/dev/null || need+=(socat)
command -v strace >/dev/null || need+=(strace)
command -v setpriv >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v man >/dev/null || need+=(man-db)
command -v gcc >/dev/null || command -v clang >/dev/null || need+=(gcc)
if [ "${#need[@]}" -gt 0 ]; then
	if ! is_root; then
		echo "test-deb: missing ${need[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "test-deb: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- maintainer scripts -------------------------------------------------
for s in postinst prerm postrm; do
	if sh -n "packaging/$s" && head -1 "packaging/$s" | grep -qx '#!/bin/sh' && grep -qx 'set -e' "packaging/$s"; then
		ok "packaging/$s: #!/bin/sh, set -e, sh -n"
	else
		fail "packaging/$s: not a '#!/bin/sh' + 'set -e' script that sh -n accepts"
	fi
done
if is_root; then
	if timeout 60 scripts/test-maintscripts.sh >"$tmp/maint.out" 2>&1; then
		ok "maintainer scripts per dpkg action ($(tail -1 "$tmp/maint.out"))"
	else
		cat "$tmp/maint.out"
		fail "maintainer scripts per dpkg action"
	fi
else
	skip "maintainer scripts per dpkg action (needs root for unshare)"
fi

# --- version mapping ----------------------------------------------------
vfail=
while read -r desc want; do
	got=$(VIPCAST_SNAPSHOT_DATE=20260101000000 scripts/deb-version.sh "$desc")
	[ "$got" = "$want" ] || { vfail="$vfail $desc->$got(want $want)"; }
done <<'EOF2'
v1.2.3 1.2.3
v1.2.3-rc1 1.2.3~rc1
v1.2.3-4-gabc1234 1.2.3+4.gabc1234
v1.2.3-4-gabc1234-dirty 1.2.3+4.gabc1234.dirty
abc1234 0.0.0~git20260101000000.abc1234
abc1234-dirty 0.0.0~git20260101000000.abc1234.dirty
dev 0.0.0~dev
EOF2
# Later snapshots must sort higher.
if dpkg --compare-versions 1.2.3~rc1 lt 1.2.3 && dpkg --compare-versions 1.2.3 lt 1.2.3+4.gabc1234 &&
	dpkg --compare-versions 0.0.0~git20260101000000.abc1234 lt 0.0.0~git20260102000000.0123456 &&
	dpkg --compare-versions 0.0.0~git20260101000000.abc1234 lt 0.0.1 && [ -z "$vfail" ]; then
	ok "git describe -> Debian version mapping"
else
	fail "git describe -> Debian version mapping:$vfail"
fi

# --- build --------------------------------------------------------------
if ! timeout 900 scripts/build-deb.sh >"$tmp/build.out" 2>&1; then
	cat "$tmp/build.out"
	fail "make deb (scripts/build-deb.sh)"
	echo "deb: $passed passed, $failed failed"
	exit 1
fi
debs=(dist/vipcast_*.deb)
deb=${debs[0]}
debver=$(scripts/deb-version.sh "$VERSION")-1
arch=$(dpkg --print-architecture)
if [ "${#debs[@]}" = 1 ] && [ "$deb" = "dist/vipcast_${debver}_${arch}.deb" ]; then
	ok "built $deb ($(du -h "$deb" | cut -f1))"
else
	fail "built ${debs[*]}, want dist/vipcast_${debver}_${arch}.deb"
fi

# --- lintian ------------------------------------------------------------
# --pedantic and --display-info so that everything is shown; only errors
# and warnings fail. An override that no longer matches anything fails
# too, so the overrides file stays true.
if timeout 600 lintian --fail-on error,warning --display-info --pedantic "$deb" >"$tmp/lintian.out" 2>&1; then
	lint_rc=0
else
	lint_rc=$?
fi
grep -v 'running with root privileges' "$tmp/lintian.out" | sed 's/^/    lintian: /' || true
if [ "$lint_rc" = 0 ] && ! grep -q 'unused-override\|mismatched-override' "$tmp/lintian.out"; then
	ok "lintian: no errors or warnings, no stale overrides"
else
	fail "lintian (exit $lint_rc)"
fi

# --- contents -----------------------------------------------------------
cat >"$tmp/contents.want" <<'EOF2'
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/vipcast/
-rw-r----- root/root ./etc/vipcast/vipcast.toml
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/vipcastd.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/vipcast
drwxr-xr-x root/root ./usr/sbin/
-rwxr-xr-x root/root ./usr/sbin/vipcastd
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/bash-completion/
drwxr-xr-x root/root ./usr/share/bash-completion/completions/
-rw-r--r-- root/root ./usr/share/bash-completion/completions/vipcast
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/vipcast/
-rw-r--r-- root/root ./usr/share/doc/vipcast/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/vipcast/copyright
drwxr-xr-x root/root ./usr/share/fish/
drwxr-xr-x root/root ./usr/share/fish/vendor_completions.d/
-rw-r--r-- root/root ./usr/share/fish/vendor_completions.d/vipcast.fish
drwxr-xr-x root/root ./usr/share/lintian/
drwxr-xr-x root/root ./usr/share/lintian/overrides/
-rw-r--r-- root/root ./usr/share/lintian/overrides/vipcast
drwxr-xr-x root/root ./usr/share/man/
drwxr-xr-x root/root ./usr/share/man/man8/
-rw-r--r-- root/root ./usr/share/man/man8/vipcast.8.gz
-rw-r--r-- root/root ./usr/share/man/man8/vipcastd.8.gz
drwxr-xr-x root/root ./usr/share/zsh/
drwxr-xr-x root/root ./usr/share/zsh/vendor-completions/
-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_vipcast
EOF2
dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' | sort -k3 >"$tmp/contents.got"
if diff -u "$tmp/contents.want" "$tmp/contents.got" >"$tmp/contents.diff"; then
	ok "dpkg-deb -c: $(grep -c '^-' "$tmp/contents.got") files with the expected modes"
else
	sed 's/^/    /' "$tmp/contents.diff"
	fail "dpkg-deb -c differs from the expected list"
fi
for f in ./usr/sbin/vipcastd ./usr/bin/vipcast; do
	size=$(dpkg-deb -c "$deb" | awk -v f="$f" '$6 == f {print $3}')
	[ "${size:-0}" -gt 1000000 ] || fail "$f is only ${size:-0} bytes"
done

ctl() { dpkg-deb -f "$deb" "$1"; }
cerr=
[ "$(ctl Package)" = vipcast ] || cerr="$cerr Package=$(ctl Package)"
[ "$(ctl Version)" = "$debver" ] || cerr="$cerr Version=$(ctl Version)"
[ "$(ctl Architecture)" = "$arch" ] || cerr="$cerr Architecture=$(ctl Architecture)"
ctl Depends | grep -Eq '(^|, )libc6 \(>= [0-9.]+\)' || cerr="$cerr Depends(libc6)=$(ctl Depends)"
ctl Depends | grep -Eq '(^|, )adduser(,|$)' || cerr="$cerr Depends(adduser)=$(ctl Depends)"
ctl Depends | grep -Eq '(^|, )procps(,|$)' || cerr="$cerr Depends(procps)=$(ctl Depends)"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$tmp/conffiles"
[ "$(cat "$tmp/conffiles")" = /etc/vipcast/vipcast.toml ] || cerr="$cerr conffiles=$(tr '\n' ' ' <"$tmp/conffiles")"
if [ -z "$cerr" ]; then
	ok "control: $(ctl Package) $(ctl Version) $(ctl Architecture), Depends: $(ctl Depends), conffile /etc/vipcast/vipcast.toml"
else
	fail "control fields:$cerr"
fi

# --- install into a scratch root ----------------------------------------
# dpkg --root with chrootless maintainer scripts (they see DPKG_ROOT and
# leave the host alone; deb-systemd-helper enables the unit inside the
# root). --force-depends: the scratch root has no libc6 or adduser.
if is_root; then
	sroot=$tmp/root
	mkdir -p "$sroot/var/lib/dpkg/info" "$sroot/var/lib/dpkg/updates" "$sroot/var/lib/dpkg/triggers"
	touch "$sroot/var/lib/dpkg/status" "$sroot/var/lib/dpkg/available"
	dpkg_root() { dpkg --root="$sroot" --force-script-chrootless --force-depends --force-not-root --log=/dev/null "$@"; }
	if dpkg_root -i "$deb" >"$tmp/install.out" 2>&1 &&
		[ "$(dpkg-query --root="$sroot" -W -f='${Status} ${Version}' vipcast)" = "install ok installed $debver" ]; then
		ok "dpkg --root install: installed $debver"
	else
		cat "$tmp/install.out"
		fail "dpkg --root install"
	fi
	if [ "$(readlink "$sroot/etc/systemd/system/multi-user.target.wants/vipcastd.service")" = /lib/systemd/system/vipcastd.service ]; then
		ok "postinst enabled vipcastd.service (multi-user.target.wants)"
	else
		fail "vipcastd.service not enabled in the scratch root: $(ls -lR "$sroot/etc/systemd" 2>&1 | head -5)"
	fi
	if out=$("$sroot/usr/sbin/vipcastd" --check-config --config "$sroot/etc/vipcast/vipcast.toml" 2>&1); then
		ok "vipcastd --check-config on the shipped config: $out"
	else
		fail "vipcastd --check-config on the shipped config: $out"
	fi
	out=$("$sroot/usr/sbin/vipcastd" --version 2>&1) || true
	[ "$out" = "vipcastd $VERSION" ] && ok "vipcastd --version: $out" || fail "vipcastd --version: $out (want vipcastd $VERSION)"
	# No server: exits non-zero, but prints the client's version first.
	rc=0
	out=$(VIPCAST_SOCKET=$tmp/none.sock "$sroot/usr/bin/vipcast" version 2>&1) || rc=$?
	if [ "$rc" != 0 ] && echo "$out" | grep -qxF "client: $VERSION"; then
		ok "vipcast version without a server: exit $rc, prints 'client: $VERSION'"
	else
		fail "vipcast version: exit $rc, output: $out"
	fi
	mout=
	for page in vipcastd.8 vipcast.8; do
		mout="$mout$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$sroot/usr/share/man/man8/$page.gz" 2>&1 >/dev/null)"
		zcat "$sroot/usr/share/man/man8/$page.gz" | grep -q "^\.TH .*\"vipcast ${debver%-1}\"" || mout="$mout $page: no version in .TH"
	done
	[ -z "$mout" ] && ok "man pages render without groff warnings" || fail "man pages: $mout"
	if bash -n "$sroot/usr/share/bash-completion/completions/vipcast" &&
		grep -q vipcast "$sroot/usr/share/zsh/vendor-completions/_vipcast" &&
		grep -q 'complete -c vipcast' "$sroot/usr/share/fish/vendor_completions.d/vipcast.fish"; then
		ok "shell completions (bash -n; zsh and fish generated)"
	else
		fail "shell completions"
	fi

	# Reinstall (the upgrade path) keeps a locally modified conffile.
	echo '# local change' >>"$sroot/etc/vipcast/vipcast.toml"
	if dpkg_root --force-confold -i "$deb" >"$tmp/reinstall.out" 2>&1 &&
		tail -1 "$sroot/etc/vipcast/vipcast.toml" | grep -qx '# local change'; then
		ok "reinstall keeps the locally modified conffile"
	else
		cat "$tmp/reinstall.out"
		fail "reinstall over a modified conffile"
	fi

	# Purge removes everything, conffile and unit enablement included
	# (empty directories such as etc/systemd/system, which systemd owns on
	# a real system, may stay).
	if dpkg_root --purge vipcast >"$tmp/purge.out" 2>&1; then
		left=$(cd "$sroot" && find . -path ./var -prune -o ! -type d -print)
		[ -e "$sroot/etc/vipcast" ] && left="$left ./etc/vipcast"
		if [ -z "$left" ] && ! dpkg-query --root="$sroot" -W vipcast >/dev/null 2>&1; then
			ok "purge leaves nothing behind"
		else
			fail "purge left: $(echo "$left" | tr '\n' ' ')"
		fi
	else
		cat "$tmp/purge.out"
		fail "dpkg --root --purge"
	fi
else
	skip "dpkg --root install, run of the installed binaries (needs root)"
fi

# --- systemd-analyze ----------------------------------------------------
# verify needs the unit's ExecStart binary and the targets it refers to;
# --root points it at a tree with the package and the host's targets, so
# it needs no running systemd (PID 1 need not be systemd here).
vroot=$tmp/verify
mkdir -p "$vroot"
dpkg-deb -x "$deb" "$vroot"
cp /lib/systemd/system/*.target /lib/systemd/system/*.slice "$vroot/lib/systemd/system/" 2>/dev/null || true
if systemd-analyze verify --man=no --root="$vroot" vipcastd.service >"$tmp/verify.out" 2>&1 && [ ! -s "$tmp/verify.out" ]; then
	ok "systemd-analyze verify vipcastd.service: no findings"
else
	sed 's/^/    /' "$tmp/verify.out"
	fail "systemd-analyze verify vipcastd.service"
fi
# Exposure (0 = locked down, 10 = unprotected); fail if hardening regresses
# past 3.0 ("OK").
if systemd-analyze security --offline=true --man=no --root="$vroot" --threshold=30 vipcastd.service >"$tmp/security.out" 2>&1; then
	ok "systemd-analyze security: $(grep -o 'Overall exposure level.*' "$tmp/security.out")"
else
	grep -o 'Overall exposure level.*' "$tmp/security.out" || cat "$tmp/security.out"
	fail "systemd-analyze security: exposure above 3.0"
fi

# --- run it as the unit would -------------------------------------------
if is_root; then
	if timeout 180 scripts/test-deb-run.sh "$vroot" "$VERSION" >"$tmp/run.out" 2>&1; then
		ok "packaged vipcastd run with the unit's capabilities ($(tail -1 "$tmp/run.out"))"
		sed 's/^/    /' "$tmp/run.out"
	else
		sed 's/^/    /' "$tmp/run.out"
		fail "packaged vipcastd run with the unit's capabilities"
	fi
else
	skip "packaged vipcastd run (needs root: netns, BPF)"
fi

if [ "$skipped" -gt 0 ]; then
	echo "deb: $passed passed, $failed failed, $skipped skipped"
else
	echo "deb: $passed passed, $failed failed"
fi
[ "$failed" = 0 ]
