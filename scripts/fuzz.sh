#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each:
#
#   scripts/fuzz.sh [SECONDS]     # default 10 s per target; `make fuzz` uses 120
#
# Targets are found by grepping the test files for `func FuzzX(f *testing.F)`.
# `go test -fuzz` takes one target at a time, so each runs on its own:
#
#   go test -run '^$' -fuzz '^FuzzX$' -fuzztime ${SECONDS}s ./pkg/
#
# Every target runs even when an earlier one fails; the script then exits 1.
# A failing input is written to pkg/testdata/fuzz/FuzzX/ by go test: commit
# it with the fix, and plain `go test` replays it from then on.
# Privileged targets (BPF programs) skip unless run as root, as in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
	echo "usage: $0 [SECONDS]   (fuzzing time per target, a positive integer)" >&2
	exit 2
fi
GO=${GO:-go}
# Minimizing each new interesting input may take up to a minute by default,
# during which nothing else is fuzzed; inputs here are packets and config
# files, where a few seconds of minimizing is plenty.
minimize=${FUZZ_MINIMIZE_TIME:-3s}

# "dir name" pairs, e.g. "lb FuzzBalancer".
targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	grep -v '/testdata/' |
	sed -E 's#^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' |
	sort)
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
summary=()
start=$(date +%s)
while read -r dir name; do
	echo "fuzz: $name in ./$dir for ${secs}s"
	t0=$(date +%s)
	corpus="$dir/testdata/fuzz/$name"
	count_corpus() { if [ -d "$corpus" ]; then find "$corpus" -type f | wc -l; else echo 0; fi; }
	before=$(count_corpus)
	if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" -fuzzminimizetime "$minimize" "./$dir/" >"$log" 2>&1; then
		result=ok
	elif grep -qx '    context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log" &&
		[ "$(count_corpus)" -eq "$before" ]; then
		# go test's fuzzer sometimes reports its own time running out
		# (while it minimises a new interesting input) as a failure, with no
		# failing input: not a finding. Counted, shown, not failed.
		result=ok-timeout
		grep -E 'execs|deadline' "$log" | tail -3
	else
		result=FAIL
		failed+=("$dir $name")
		cat "$log"
	fi
	if grep -q -- '--- SKIP' "$log"; then
		result=skipped
	fi
	# The last progress line holds the total: "fuzz: elapsed: 10s, execs: 123 (45/sec), ..."
	execs=$(grep -Eo 'execs: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
	execs=${execs:-0}
	summary+=("$(printf '%-22s %-18s %-8s %10s execs %8s/s %4ss' "$name" "./$dir" "$result" "$execs" "$((execs / secs))" "$(($(date +%s) - t0))")")
done <<<"$targets"

echo
echo "fuzz: $(wc -l <<<"$targets") targets, ${secs}s each, $(($(date +%s) - start))s in all"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]}" >&2
	exit 1
fi
