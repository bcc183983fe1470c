#!/usr/bin/env bash
# Installs the Debian packages that build, test, demo and bench need.
# Idempotent and quick: asks dpkg first and calls apt only for what is missing.
set -euo pipefail

PACKAGES=(
	# build
	clang llvm make gcc pkg-config libc6-dev
	libbpf-dev libelf-dev zlib1g-dev libyaml-dev libssl-dev libnl-3-dev libnl-route-3-dev
	bpftool
	# tests
	libcriterion-dev iproute2 iptables
	# lint and format
	clang-format cppcheck
)

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo $0)" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
