#!/usr/bin/env bash
# Installs the Debian packages that build, test, demo and bench need.
# Idempotent and quick: asks dpkg first and calls apt only for what is missing.
set -euo pipefail

PACKAGES=(
	# build
	clang llvm make gcc pkg-config libc6-dev
	libbpf-dev libelf-dev zlib1g-dev libyaml-dev libssl-dev libnl-3-dev libnl-route-3-dev libpcre2-dev
	bpftool
	# tests; fuzzing (libFuzzer and the sanitizer runtimes of clang 14, gcc's ASan/UBSan runtimes)
	libcriterion-dev iproute2 iptables
	# L7 tests and bench: the test backend's HTTP parser (libhttp-parser, also the parser tests' oracle), curl,
	# and wrk, HAProxy and nginx for `make bench` section l7 (run by the bench in namespaces, never as services)
	libhttp-parser-dev curl wrk haproxy nginx
	# mTLS tests: the openssl CLI makes a plug-in CA and checks minted certificates independently
	openssl
	# mTLS tunnel (HBONE): HTTP/2 framing and flow control; the interop test's independent HTTP/2 peer
	libnghttp2-dev python3-h2
	# mTLS tunnel e2e: a capture on the link between the nodes must never show a pod's plaintext
	tcpdump
	# the Kubernetes API client (--kubernetes, --kubeconfig): HTTP, TLS and the chunked watch streams
	libcurl4-openssl-dev
	libclang-rt-14-dev libasan8 libubsan1
	# lint and format
	clang-format cppcheck
	# vmtests: Debian kernels booted under QEMU
	qemu-system-x86 busybox-static cpio xz-utils kmod
)

# promtool (checks the metrics exposition in tests) ships only inside Debian's prometheus server package:
# take the static binary out of the .deb rather than installing and starting a Prometheus server.
install_promtool() {
	command -v promtool >/dev/null && return 0
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1) ||
		{ apt-get update -q >/dev/null && (cd "$tmp" && apt-get download -q prometheus >/dev/null); }
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
	install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
	rm -rf "$tmp"
	echo "install-deps: installed promtool from Debian's prometheus package" >&2
}

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then install_promtool; fi
	exit 0
fi

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
install_promtool
