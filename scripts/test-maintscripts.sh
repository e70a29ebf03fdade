#!/usr/bin/env bash
# Runs packaging/{postinst,prerm,postrm} for each dpkg action with stub
# commands (addgroup, getent, deb-systemd-helper, deb-systemd-invoke,
# systemctl, vipcastd) that only log their arguments, and compares what the
# scripts ran with what they should run. It runs in a private mount
# namespace with its own tmpfs on /run (to make /run/systemd/system come
# and go) and on /sys/fs/bpf, so the host is never touched. Needs root
# (unshare); bounded: no script waits for anything.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != --in-namespace ]; then
	exec unshare --mount --propagation private "$0" --in-namespace
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /sys/fs/bpf

stubs=$tmp/stubs
mkdir -p "$stubs"
stub() { # name, shell body run after logging
	printf '#!/bin/sh\necho "%s $*" >>"$STUB_LOG"\n%s\n' "$1" "$2" >"$stubs/$1"
	chmod +x "$stubs/$1"
}
stub addgroup 'exit 0'
stub getent '[ "${STUB_GROUP_EXISTS:-0}" = 1 ]'
stub deb-systemd-helper 'if [ "$1 $2" = "--quiet was-enabled" ]; then [ "${STUB_WAS_ENABLED:-1}" = 1 ]; fi'
stub deb-systemd-invoke 'exit 0'
stub systemctl 'exit 0'
stub vipcastd 'exit "${STUB_CLEANUP_RC:-0}"'

export STUB_LOG=$tmp/log
export PATH=$stubs:/usr/bin:/bin
passed=0
failed=0

# scenario NAME SYSTEMD(yes|no) EXPECTED_RC SCRIPT ARGS... <<< expected log
scenario() {
	local name=$1 systemd=$2 want_rc=$3 script=$4
	shift 4
	local want
	want=$(cat)
	rm -rf /run/systemd
	[ "$systemd" = yes ] && mkdir -p /run/systemd/system
	: >"$STUB_LOG"
	local rc=0
	sh "packaging/$script" "$@" >"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" = "$want_rc" ] && [ "$(cat "$STUB_LOG")" = "$want" ]; then
		echo "ok   maintscripts: $name"
		passed=$((passed + 1))
	else
		echo "FAIL maintscripts: $name: $script $* exited $rc (want $want_rc)"
		echo "  ran:"
		sed 's/^/    /' "$STUB_LOG"
		echo "  want:"
		printf '%s\n' "$want" | sed 's/^/    /'
		echo "  output:"
		sed 's/^/    /' "$tmp/out"
		failed=$((failed + 1))
	fi
}

scenario "first install: group created, unit enabled, not started" yes 0 postinst configure "" <<'EOF2'
getent group vipcast
addgroup --system --quiet vipcast
deb-systemd-helper unmask vipcastd.service
deb-systemd-helper --quiet was-enabled vipcastd.service
deb-systemd-helper enable vipcastd.service
systemctl --system daemon-reload
EOF2

export STUB_GROUP_EXISTS=1
scenario "upgrade: group kept, running daemon restarted (try-restart)" yes 0 postinst configure 0.0.0~git1-1 <<'EOF2'
getent group vipcast
deb-systemd-helper unmask vipcastd.service
deb-systemd-helper --quiet was-enabled vipcastd.service
deb-systemd-helper enable vipcastd.service
systemctl --system daemon-reload
deb-systemd-invoke try-restart vipcastd.service
EOF2

STUB_WAS_ENABLED=0 scenario "upgrade after the admin disabled the unit: stays disabled" yes 0 postinst configure 0.0.0~git1-1 <<'EOF2'
getent group vipcast
deb-systemd-helper unmask vipcastd.service
deb-systemd-helper --quiet was-enabled vipcastd.service
deb-systemd-helper update-state vipcastd.service
systemctl --system daemon-reload
deb-systemd-invoke try-restart vipcastd.service
EOF2

scenario "install without systemd running: enabled, nothing started" no 0 postinst configure "" <<'EOF2'
getent group vipcast
deb-systemd-helper unmask vipcastd.service
deb-systemd-helper --quiet was-enabled vipcastd.service
deb-systemd-helper enable vipcastd.service
EOF2

DPKG_ROOT=/nonexistent scenario "dpkg --root install: no host groups, no systemctl" yes 0 postinst configure "" <<'EOF2'
deb-systemd-helper unmask vipcastd.service
deb-systemd-helper --quiet was-enabled vipcastd.service
deb-systemd-helper enable vipcastd.service
EOF2

scenario "prerm upgrade: daemon keeps running (hitless)" yes 0 prerm upgrade 0.0.0~git2-1 </dev/null

mkdir -p /sys/fs/bpf/vipcast
scenario "prerm remove: stop, then clean up the data plane" yes 0 prerm remove <<'EOF2'
deb-systemd-invoke stop vipcastd.service
vipcastd --cleanup --config /etc/vipcast/vipcast.toml
EOF2
if [ -e /sys/fs/bpf/vipcast ]; then
	echo "FAIL maintscripts: prerm remove left the empty /sys/fs/bpf/vipcast"
	failed=$((failed + 1))
fi

mkdir -p /sys/fs/bpf/vipcast/root_eth0
STUB_CLEANUP_RC=1 scenario "prerm remove: a failed cleanup warns but does not block removal" yes 0 prerm remove <<'EOF2'
deb-systemd-invoke stop vipcastd.service
vipcastd --cleanup --config /etc/vipcast/vipcast.toml
EOF2
if ! grep -q "may still be attached" "$tmp/out" || [ ! -d /sys/fs/bpf/vipcast/root_eth0 ]; then
	echo "FAIL maintscripts: failed cleanup: no warning, or a non-empty pin directory was removed"
	failed=$((failed + 1))
fi

mv "$stubs/vipcastd" "$tmp/vipcastd.away"
scenario "prerm remove without systemd and without the binary" no 0 prerm remove <<'EOF2'
EOF2
mv "$tmp/vipcastd.away" "$stubs/vipcastd"

scenario "postrm remove: daemon-reload, mask" yes 0 postrm remove <<'EOF2'
systemctl --system daemon-reload
deb-systemd-helper mask vipcastd.service
EOF2

scenario "postrm purge: unit state purged, group kept" yes 0 postrm purge <<'EOF2'
deb-systemd-helper purge vipcastd.service
deb-systemd-helper unmask vipcastd.service
EOF2

scenario "postrm upgrade: nothing" yes 0 postrm upgrade 0.0.0~git2-1 </dev/null

for script in postinst prerm postrm; do
	scenario "$script rejects an unknown action" yes 1 "$script" bogus </dev/null
done

echo "maintscripts: $passed passed, $failed failed"
[ "$failed" = 0 ]
