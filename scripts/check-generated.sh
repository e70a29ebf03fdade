#!/usr/bin/env bash
# Rebuilds the BPF objects and bindings in a scratch copy and compares them
# with the ones in the tree: committed generated files must be what the
# committed sources produce.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp/"
cp -r bpf "$tmp/bpf"
(cd "$tmp" && go generate ./bpf/...)
status=0
for f in bpf/*_bpfel.go bpf/*_bpfel.o; do
	if ! cmp -s "$f" "$tmp/$f"; then
		echo "check-generated: $f differs from a fresh 'make generate'" >&2
		status=1
	fi
done
for f in "$tmp"/bpf/*_bpfel.go "$tmp"/bpf/*_bpfel.o; do
	rel=${f#"$tmp"/}
	[ -e "$rel" ] || { echo "check-generated: $rel is generated but not in the tree" >&2; status=1; }
done
[ $status -eq 0 ] && echo "check-generated: BPF objects and bindings are up to date"
exit $status
