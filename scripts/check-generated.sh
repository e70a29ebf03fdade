#!/usr/bin/env bash
# Rebuilds every bpf2go output (each directory with a gen.go that runs
# bpf2go) in a scratch copy of the module and compares it with the tree:
# committed generated files must be what the committed sources produce.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dirs=$(grep -l 'go:generate go tool bpf2go' $(git ls-files '*gen.go' '**/gen.go') 2>/dev/null | xargs -n1 dirname | sort -u)
cp go.mod go.sum "$tmp/"
status=0
for d in $dirs; do
	mkdir -p "$tmp/$d"
	cp -r "$d/." "$tmp/$d/"
	rm -f "$tmp/$d"/*_bpfel.go "$tmp/$d"/*_bpfel.o
	# The package may import others in the module only for tests; bpf2go
	# needs nothing but the directory itself.
	(cd "$tmp/$d" && go generate ./gen.go)
	for f in "$tmp/$d"/*_bpfel.go "$tmp/$d"/*_bpfel.o; do
		rel=$d/$(basename "$f")
		if [ ! -e "$rel" ]; then
			echo "check-generated: $rel is generated but not in the tree" >&2
			status=1
		elif ! cmp -s "$f" "$rel"; then
			echo "check-generated: $rel differs from a fresh 'make generate'" >&2
			status=1
		fi
	done
	for f in "$d"/*_bpfel.go "$d"/*_bpfel.o; do
		[ -e "$tmp/$f" ] || { echo "check-generated: $f is in the tree but no longer generated" >&2; status=1; }
	done
done
# The API: protoc output must match the committed .pb.go files.
mkdir -p "$tmp/api"
cp api/vipcast.proto api/gen.go "$tmp/api/"
(cd "$tmp/api" && go generate ./gen.go)
for f in api/vipcast.pb.go api/vipcast_grpc.pb.go; do
	if ! cmp -s "$f" "$tmp/$f"; then
		echo "check-generated: $f differs from a fresh 'make generate'" >&2
		status=1
	fi
done
[ $status -eq 0 ] && echo "check-generated: BPF objects, bindings and API code are up to date ($(echo $dirs | wc -w) packages)"
exit $status
