#!/usr/bin/env bash
# make demo: builds the netns lab of test/lab (client, BIRD router, vipcastd
# on an XDP load balancer, three reals), shows vipcast at work with real
# output, and tears everything down. Exits non-zero as soon as a step does
# not behave. Needs root; `make demo` installs dependencies and builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (network namespaces, BPF)" >&2
	exit 1
fi

BIN=${BIN:-bin}
LAB="$BIN/vipcast-lab"
START=$SECONDS
ID=demo$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
DIR=/run/vipcast-lab/$ID
VIPCAST=("$BIN/vipcast" --socket "$DIR/lb1.sock")
VIP=203.0.113.1
VIP6=2001:db8:f00::1

bold="" plain=""
if [ -t 1 ]; then
	bold=$(tput bold 2>/dev/null || true)
	plain=$(tput sgr0 2>/dev/null || true)
fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
say() { printf '    %s\n' "$*"; }
fail() {
	printf '\n%sDEMO FAILED:%s %s\n' "$bold" "$plain" "$*" >&2
	if [ -f "$DIR/lb1.log" ]; then
		echo "--- last lines of vipcastd's log:" >&2
		tail -n 15 "$DIR/lb1.log" >&2
	fi
	exit 1
}
# show CMD...: print the command, then run it; its output is the demo.
show() {
	local shown="$*"
	case $shown in
	birdc_*) shown="birdc -s $DIR/bird.ctl ${shown#birdc_ }" ;;
	in_ns*) shown="nsenter --net=/run/netns/vc$ID-${shown#in_ns }" ;;
	esac
	printf '%s$ %s%s\n' "$bold" "$shown" "$plain"
	"$@"
}
in_ns() { nsenter --net="/run/netns/vc$ID-$1" -- "${@:2}"; }
birdc_() { birdc -s "$DIR/bird.ctl" "$@"; }
# wait_until SECONDS WHAT CMD...: poll CMD every 50 ms; print how long it took.
wait_until() {
	local limit=$1 what=$2 t0
	shift 2
	t0=$(date +%s%N)
	until "$@" >/dev/null 2>&1; do
		if [ $(($(date +%s%N) - t0)) -gt $((limit * 1000000000)) ]; then
			fail "$what: not within ${limit}s"
		fi
		sleep 0.05
	done
	say "$what after $((($(date +%s%N) - t0) / 1000000)) ms"
}
route_in_bird() { birdc_ show route "$1" | grep -q "$1"; }
route_gone() { ! route_in_bird "$1"; }
real_health() { "${VIPCAST[@]}" real list "$VIP:80/tcp" | awk -v r="$1" '$2 == r {print $NF}'; }
real_is() { [ "$(real_health "$1")" = "$2" ]; }
all_up() { "${VIPCAST[@]}" real list "$VIP:80/tcp" | awk 'NR > 1 && $NF != "up" {bad = 1} END {exit bad}'; }
# curl_reals N [VIP]: N requests from the client; prints the answers and
# records which reals answered in REALS.
curl_reals() {
	local n=$1 vip=${2:-$VIP} url out
	url="http://$vip/"
	[[ $vip == *:* ]] && url="http://[$vip]/"
	REALS=""
	printf '%s$ nsenter --net=/run/netns/vc%s-client curl -s %s%s   (%d times)\n' "$bold" "$ID" "$url" "$plain" "$n"
	for _ in $(seq "$n"); do
		out=$(in_ns client curl -s -m 2 "$url") || fail "curl $url from the client failed"
		say "$out"
		REALS+="${out%% *} "
	done
	REALS=$(tr ' ' '\n' <<<"$REALS" | sort -u | grep -v '^$' | tr '\n' ' ')
}

cleanup() {
	"$LAB" down "$ID" >/dev/null 2>&1 || true
}
trap cleanup EXIT

[ -x "$BIN/vipcastd" ] && [ -x "$BIN/vipcast" ] || fail "no $BIN/vipcastd or $BIN/vipcast: run make build"
go build -o "$LAB" ./test/lab/cmd || fail "build the lab command"

step "Build the lab: client, BIRD router, LB running vipcastd (XDP), three reals (XDP decap + HTTP/UDP servers)"
show "$LAB" up --id "$ID" --bin "$BIN" || fail "lab up"

step "BGP: vipcastd's sessions to the router, as vipcastd and as BIRD see them"
show "${VIPCAST[@]}" neighbor || fail "vipcast neighbor"
[ "$("${VIPCAST[@]}" neighbor | grep -c established)" -eq 2 ] || fail "both BGP sessions should be established"
show birdc_ show protocols
show birdc_ show route "$VIP/32" all
route_in_bird "$VIP/32" || fail "BIRD has no route to $VIP"
show in_ns rtr ip route show "$VIP"

step "curl from the client to the VIP: the router sends it to the LB, XDP tunnels it to a real, the real answers directly"
curl_reals 6
[ "$(wc -w <<<"$REALS")" -ge 2 ] || fail "6 requests were all answered by one real ($REALS)"
say "answered by: $REALS"
curl_reals 2 "$VIP6"

step "What vipcastd runs"
show "${VIPCAST[@]}" vip list -l
show "${VIPCAST[@]}" stats
show "${VIPCAST[@]}" health

step "real2's server stops: its health checks (through the tunnel) fail and it leaves the ring"
show "$LAB" server "$ID" real2 stop
wait_until 5 "192.0.2.12 is down" real_is 192.0.2.12 down
show "${VIPCAST[@]}" real list "$VIP:80/tcp"
curl_reals 6
[[ $REALS != *real2* ]] && [ -n "$REALS" ] || fail "real2 still answers ($REALS)"
say "answered by: $REALS"

step "real1 and real3 stop too: no healthy real is left, so vipcastd withdraws the VIP from BIRD"
show "$LAB" server "$ID" real1 stop
show "$LAB" server "$ID" real3 stop
wait_until 5 "$VIP/32 withdrawn from BIRD" route_gone "$VIP/32"
show birdc_ show route "$VIP/32" || true # birdc exits non-zero: "Network not found"
show "${VIPCAST[@]}" vip list
if in_ns client curl -s -m 1 "http://$VIP/" >/dev/null 2>&1; then
	fail "the VIP still answers with every real down"
fi
say "curl http://$VIP/ from the client: fails, the router has no route"

step "Recovery: the servers come back, checks pass (rise), the VIP is announced again"
show "$LAB" server "$ID" real1 start
wait_until 5 "$VIP/32 back in BIRD" route_in_bird "$VIP/32"
show "$LAB" server "$ID" real2 start
show "$LAB" server "$ID" real3 start
wait_until 5 "every real up" all_up
show "${VIPCAST[@]}" real list "$VIP:80/tcp"
curl_reals 6
[ "$(wc -w <<<"$REALS")" -ge 2 ] || fail "after recovery 6 requests were all answered by one real ($REALS)"
say "answered by: $REALS"

step "Tear down"
trap - EXIT
show "$LAB" down "$ID" || fail "lab down"
took=$((SECONDS - START))
say "demo done in ${took}s"
[ "$took" -lt 120 ] || fail "the demo took ${took}s, over its 2-minute budget"
