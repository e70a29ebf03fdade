#!/usr/bin/env bash
# Installs what vipcast needs to build, test and demo, idempotently.
# Debian packages via apt-get; Go modules via the module proxy (go mod download).
set -euo pipefail

PKGS=(clang llvm libbpf-dev bpftool iproute2 ethtool tcpdump bird2 gobgpd curl protobuf-compiler iputils-ping
      lintian dpkg-dev make git ca-certificates)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi

# BIRD is started by the tests inside their own namespaces; the packaged
# service would only hold port 179 on the host.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet bird 2>/dev/null; then
	systemctl stop bird || true
fi

cd "$(dirname "$0")/.."
if [ -f go.mod ]; then
	go mod download
fi
