#!/usr/bin/env bash
# Runs the packaged vipcastd (from an extracted package tree ROOT) the way
# its systemd unit runs it, without systemd (PID 1 need not be systemd
# here): with exactly the unit's CapabilityBoundingSet (setpriv, also
# no_new_privs) and NOTIFY_SOCKET set, in a network namespace with a veth
# pair whose far end (the gateway, 192.0.2.1) sits in a second namespace,
# and on a private BPF filesystem, so the host's interfaces and pins are
# never touched. The shipped configuration is used with only the interface,
# XDP mode (generic: veth) and socket path changed. Checks:
#   READY=1 arrives on the notify socket, and the API answers by then;
#   gateway_mac = "auto" (the shipped default) resolves the gateway;
#   the API socket gets its mode and group (needs CAP_CHOWN);
#   SIGHUP (the unit's ExecReload) reloads the file;
#   SIGTERM leaves the XDP program attached and pinned (hitless stop), a
#   second start adopts it, and `vipcastd --cleanup` removes it;
#   the first run, traced with strace, makes only system calls that the
#   unit's SystemCallFilter= allows, opens only RestrictAddressFamilies=
#   sockets, never calls setns (RestrictNamespaces=yes), and writes only
#   under ReadWritePaths= and the RuntimeDirectory;
#   without each of CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_CHOWN the
#   daemon cannot start (so none of them is there for nothing).
# Needs root; every wait is bounded.
# Usage: scripts/test-deb-run.sh ROOT VERSION
set -euo pipefail

if [ "${1:-}" != --in-namespace ]; then
	exec unshare --net --mount --propagation private "$0" --in-namespace "$@"
fi
shift
root=$(realpath "$1")
version=$2

tmp=$(mktemp -d)
wrapper_pid=
daemon_pid=
notify_pid=
cleanup() { # also on an early exit: no daemon, strace or socat outlives the test
	local p
	for p in $daemon_pid $wrapper_pid $notify_pid; do kill -KILL "$p" 2>/dev/null || true; done
	for p in $daemon_pid $wrapper_pid $notify_pid; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() {
	echo "ok   run: $1"
	passed=$((passed + 1))
}
fail() {
	echo "FAIL run: $1"
	[ -f "$tmp/daemon.log" ] && sed 's/^/    log: /' "$tmp/daemon.log" | tail -8
	failed=$((failed + 1))
}

vipcastd=$root/usr/sbin/vipcastd
vipcast=$root/usr/bin/vipcast
unit=$root/lib/systemd/system/vipcastd.service
unit_value() { sed -n "s/^$1=//p" "$unit" | tr '\n' ' ' | sed 's/ *$//'; }

# The unit's capabilities, as setpriv wants them: "-all,+bpf,+perfmon,...".
unit_caps=$(unit_value CapabilityBoundingSet)
[ -n "$unit_caps" ] || { echo "FAIL run: no CapabilityBoundingSet= in $unit"; exit 1; }
caps_without() { # a capability to leave out (CAP_BPF), or "" for none
	local out= c
	for c in $unit_caps; do
		[ "$c" = "$1" ] && continue
		c=${c#CAP_}
		out="$out,+$(echo "$c" | tr 'A-Z' 'a-z')"
	done
	echo "-all$out"
}

# Private /run (for ip netns) and BPF filesystem; the gateway's namespace.
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
ip netns add gw
ip link add vc0 type veth peer name vc1 netns gw
ip link set vc0 up
ip addr add 192.0.2.10/24 dev vc0
ip route add default via 192.0.2.1 dev vc0
ip -n gw link set lo up
ip -n gw link set vc1 up
ip -n gw addr add 192.0.2.1/24 dev vc1
gw_mac=$(ip -n gw -br link show dev vc1 | awk '{print $3}')

config=$tmp/vipcast.toml
rundir=$tmp/run # stands in for the unit's RuntimeDirectory, /run/vipcast
sock=$rundir/vipcast.sock
mkdir -p "$rundir"
sed -e 's/^interface = .*/interface = "vc0"/' \
	-e 's/^xdp_mode = .*/xdp_mode = "generic"/' \
	-e "s#^socket = .*#socket = \"$sock\"#" \
	-e 's/^socket_group = .*/socket_group = "nogroup"/' \
	"$root/etc/vipcast/vipcast.toml" >"$config"
for want in 'interface = "vc0"' 'xdp_mode = "generic"' 'gateway_mac = "auto"' "socket = \"$sock\"" 'socket_group = "nogroup"'; do
	grep -qxF "$want" "$config" || { echo "FAIL run: the shipped config has no line to make '$want'"; exit 1; }
done
pin_root=/sys/fs/bpf/vipcast

start() { # setpriv bounding set, then optionally "trace"
	rm -f "$tmp/notify.out" "$tmp/notify.sock"
	socat -u "UNIX-RECV:$tmp/notify.sock" "OPEN:$tmp/notify.out,creat,append" &
	notify_pid=$!
	for _ in $(seq 50); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
	local trace=()
	[ "${2:-}" = trace ] && trace=(strace -f -qq -o "$tmp/strace.out")
	NOTIFY_SOCKET=$tmp/notify.sock "${trace[@]}" setpriv --bounding-set="$1" --inh-caps=-all --no-new-privs \
		"$vipcastd" --config "$config" --log-format json >"$tmp/daemon.log" 2>&1 &
	wrapper_pid=$!
	daemon_pid=$wrapper_pid
	if [ "${2:-}" = trace ]; then
		# Signal vipcastd, not strace (which would detach and leave it
		# running); strace's other, short-lived children are not it.
		daemon_pid=
		for _ in $(seq 50); do
			daemon_pid=$(pgrep -P "$wrapper_pid" -x vipcastd || true)
			[ -n "$daemon_pid" ] && break
			sleep 0.1
		done
		if [ -z "$daemon_pid" ]; then
			echo "FAIL run: vipcastd did not start under strace"
			exit 1
		fi
	fi
}
wait_ready() { # true once READY=1 arrived; false if the daemon died or 20 s passed
	for _ in $(seq 200); do
		grep -q '^READY=1' "$tmp/notify.out" 2>/dev/null && return 0
		kill -0 "$wrapper_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
stop() { # SIGTERM, then wait (bounded) for the daemon's exit status
	kill -TERM "$daemon_pid" 2>/dev/null || true
	local rc=0
	for _ in $(seq 150); do kill -0 "$wrapper_pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$wrapper_pid" 2>/dev/null; then
		kill -KILL "$daemon_pid" "$wrapper_pid" 2>/dev/null || true
		rc=137
	fi
	wait "$wrapper_pid" || rc=$?
	wrapper_pid=
	daemon_pid=
	kill "$notify_pid" 2>/dev/null || true
	wait "$notify_pid" 2>/dev/null || true
	notify_pid=
	return "$rc"
}
xdp_attached() { ip -d link show dev vc0 | grep -q 'prog/xdp'; }

# 1. Start with exactly the unit's capabilities, traced.
start "$(caps_without "")" trace
if wait_ready; then
	ok "READY=1 with the unit's capabilities ($unit_caps)"
else
	fail "no READY=1 within 20 s with the unit's capabilities"
	echo "run: $passed passed, $failed failed"
	exit 1
fi
out=$("$vipcast" --socket "$sock" version 2>&1) || true
if echo "$out" | grep -qxF "client: $version" && echo "$out" | grep -q "^server: $version"; then
	ok "the API answers at READY; client and server are $version"
else
	fail "vipcast version at READY: $out"
fi
if [ "$(stat -c '%a %G' "$sock")" = "660 nogroup" ]; then
	ok "API socket mode 0660, group nogroup (api.socket_group)"
else
	fail "API socket is $(stat -c '%a %G' "$sock"), want 660 nogroup"
fi
resolved=
for _ in $(seq 100); do
	if "$vipcast" --socket "$sock" gateway 2>/dev/null | grep -qi "$gw_mac"; then resolved=1; break; fi
	sleep 0.1
done
if [ -n "$resolved" ]; then
	ok "gateway_mac = \"auto\" resolves the gateway ($gw_mac)"
else
	fail "gateway_mac = \"auto\" did not resolve the gateway $gw_mac within 10 s: $("$vipcast" --socket "$sock" gateway 2>&1 | tr '\n' ' ')"
fi

# 2. SIGHUP reloads the file (the unit's ExecReload).
cat >>"$config" <<'EOF2'

[[vip]]
address = "203.0.113.1"
port = 80
EOF2
kill -HUP "$daemon_pid"
reloaded=
for _ in $(seq 100); do
	if "$vipcast" --socket "$sock" vip list 2>/dev/null | grep -q 203.0.113.1; then reloaded=1; break; fi
	sleep 0.1
done
if [ -n "$reloaded" ]; then ok "SIGHUP reloads the configuration"; else fail "SIGHUP: VIP 203.0.113.1 never appeared"; fi

# 3. SIGTERM stops the daemon and leaves the data plane attached.
if stop; then ok "SIGTERM: clean exit"; else fail "SIGTERM: exit status $?"; fi
if xdp_attached && [ -n "$(ls -A "$pin_root" 2>/dev/null)" ]; then
	ok "after stop, XDP stays attached to vc0 and pinned under $pin_root"
else
	fail "after stop: XDP attached? $(xdp_attached && echo yes || echo no); pins: $(ls -R "$pin_root" 2>&1 | tr '\n' ' ')"
fi

# 4. What the traced run did, against the unit's sandbox settings.
# System calls from the exec of vipcastd on (setpriv's own are not the
# daemon's), against SystemCallFilter= expanded through systemd's groups.
awk -v exe="execve(\"$vipcastd\"" 'index($0, exe) { on = 1 } on' "$tmp/strace.out" >"$tmp/daemon.trace"
grep -oE '^[0-9]+ +[a-z0-9_]+\(' "$tmp/daemon.trace" | awk '{ sub(/\(/, "", $2); print $2 }' | sort -u >"$tmp/used"
systemd-analyze syscall-filter --no-pager | awk -v want="$(unit_value SystemCallFilter)" '
	function expand(x,   n, a, j) {
		if (x !~ /^@/) { ok[x] = 1; return }
		if (x in seen) return
		seen[x] = 1
		n = split(members[x], a, " ")
		for (j = 1; j <= n; j++) expand(a[j])
	}
	/^@/ { group = $1; next }
	/^    [^#]/ { members[group] = members[group] " " $1 }
	END { n = split(want, w, " "); for (i = 1; i <= n; i++) expand(w[i]); for (s in ok) print s }' | sort -u >"$tmp/allowed"
denied=$(comm -23 "$tmp/used" "$tmp/allowed" | tr '\n' ' ')
if [ "$(wc -l <"$tmp/used")" -gt 20 ] && [ -z "$denied" ]; then
	ok "SystemCallFilter=$(unit_value SystemCallFilter) covers all $(wc -l <"$tmp/used") system calls made"
else
	fail "system calls outside SystemCallFilter=: ${denied:-(none traced?)}"
fi
families=$(grep -oE 'socket\(AF_[A-Z0-9]+' "$tmp/daemon.trace" | cut -c8- | sort -u | tr '\n' ' ' | sed 's/ *$//')
bad_families=
for f in $families; do
	case " $(unit_value RestrictAddressFamilies) " in *" $f "*) ;; *) bad_families="$bad_families $f" ;; esac
done
[ -z "$bad_families" ] && ok "RestrictAddressFamilies= covers the sockets opened ($families)" ||
	fail "sockets outside RestrictAddressFamilies=:$bad_families"
if grep -q ' setns(' "$tmp/daemon.trace"; then
	fail "setns() called: it needs CAP_SYS_ADMIN and RestrictNamespaces=yes forbids it ($(grep ' setns(' "$tmp/daemon.trace" | head -1 | cut -c1-80))"
else
	ok "no setns() (RestrictNamespaces=yes)"
fi
writable="$(unit_value ReadWritePaths) $rundir"
grep -E '(openat\(.*(O_WRONLY|O_RDWR|O_CREAT)|mkdirat\(|unlinkat\(|renameat2?\(|fchmodat\(|fchownat\(|bind\(.*sun_path)' "$tmp/daemon.trace" |
	grep -oE '"/[^"]*"' | tr -d '"' | sort -u >"$tmp/written"
bad_paths=
while read -r p; do
	inside=
	for w in $writable; do case "$p" in "$w" | "$w"/*) inside=1 ;; esac; done
	case "$p" in /dev/null | /proc/self/* | /proc/thread-self/*) inside=1 ;; esac
	[ -n "$inside" ] || bad_paths="$bad_paths $p"
done <"$tmp/written"
[ -z "$bad_paths" ] && ok "writes only under ReadWritePaths= and the RuntimeDirectory ($(tr '\n' ' ' <"$tmp/written"))" ||
	fail "writes outside ReadWritePaths= (ProtectSystem=strict would refuse):$bad_paths"

# 5. A second start adopts the pinned data plane.
start "$(caps_without "")"
if wait_ready && grep -q 'adopted' "$tmp/daemon.log"; then
	ok "restart adopts the pinned data plane"
else
	fail "restart did not become ready or did not adopt the pinned data plane"
fi
stop || true

# 6. vipcastd --cleanup (what prerm runs on removal) takes it down.
if setpriv --bounding-set="$(caps_without "")" --inh-caps=-all --no-new-privs \
	"$vipcastd" --cleanup --config "$config" >"$tmp/cleanup.log" 2>&1 &&
	! xdp_attached && [ ! -e "$pin_root/vc0" ]; then
	ok "vipcastd --cleanup detaches XDP and removes the pins"
else
	fail "cleanup: $(cat "$tmp/cleanup.log"); XDP attached? $(xdp_attached && echo yes || echo no); left: $(ls -R "$pin_root" 2>&1 | tr '\n' ' ')"
fi

# 7. Every capability the start path uses is needed.
for cap in CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_CHOWN; do
	start "$(caps_without "$cap")"
	if wait_ready; then
		fail "vipcastd started without $cap: is it needed?"
		stop || true
	else
		stop >/dev/null 2>&1 || true
		err=$(grep '"msg":"vipcastd stopped"' "$tmp/daemon.log" | grep -o '"err":"[^"]*' | head -1 | cut -c8-)
		ok "without $cap vipcastd cannot start (...${err: -60})"
	fi
	setpriv --bounding-set="$(caps_without "")" "$vipcastd" --cleanup --config "$config" >/dev/null 2>&1 || true
done

echo "run: $passed passed, $failed failed"
[ "$failed" = 0 ]
