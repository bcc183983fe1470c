#!/usr/bin/env bash
# `make image`: the agent's OCI image, built from Debian packages only (no container registry, no Docker).
#
#   scripts/build-image.sh BUILD_DIR [IMAGE]        (IMAGE: name:tag, default xmesh:latest)
#   scripts/build-image.sh --packages BUILD_DIR     (print the runtime packages and exit)
#
# Two layers:
#   1. a minimal Debian root filesystem (mmdebstrap, variant essential: the Essential: yes packages, i.e. a
#      shell, coreutils and dpkg with its database, which image scanners read; no apt, no docs, man pages or
#      locales) with the Debian packages that ship the libraries BUILD_DIR/xmesh is linked with
#      (found from its DT_NEEDED entries with dpkg -S, so the list follows the Makefile's LDLIBS), from the
#      same release as the build host (the binary was linked against the host's libraries) and the apt
#      sources of this host (XMESH_IMAGE_SOURCES: a sources.list or deb822 .sources file);
#   2. /usr/bin/xmesh (the BPF programs are compiled into it as skeletons: nothing else to copy).
# Layer 1 is cached in BUILD_DIR/image/cache, keyed by the release, the package list and this recipe; it
# is built again when one of them changes or with XMESH_IMAGE_REFRESH=1 (e.g. for Debian security updates).
# The result is BUILD_DIR/xmesh-image.tar: an OCI archive (a tar of an OCI image layout; umoci packs it)
# whose index names the image both by tag (org.opencontainers.image.ref.name) and by full name
# (io.containerd.image.name: `ctr images import` and `docker load` use it).
set -euo pipefail

RECIPE=2 # bump when the rootfs recipe below changes: invalidates the cached layer

die() {
	echo "build-image: $*" >&2
	exit 1
}

# The Debian packages that ship the shared libraries BIN needs directly (apt brings their dependencies).
runtime_packages() {
	local bin=$1 soname path pkg
	[ -x "$bin" ] || die "$bin not built (make)"
	for soname in $(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }'); do
		path=$(ldd "$bin" | awk -v s="$soname" '$1 == s && $2 == "=>" { print $3 }')
		[ -n "$path" ] || path=$soname # the dynamic loader itself
		pkg=""
		for p in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
			pkg=$(dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
		done
		[ -n "$pkg" ] || die "$soname ($path) is not from a Debian package: the image has only Debian's"
		echo "$pkg"
	done | sort -u
}

if [ "${1:-}" = --packages ]; then
	runtime_packages "${2:-build}/xmesh"
	exit 0
fi

BUILD=${1:-build}
IMAGE=${2:-xmesh:latest}
BIN=$BUILD/xmesh
OUT=$BUILD/xmesh-image.tar
WORK=$BUILD/image
CACHE=$WORK/cache
for c in mmdebstrap umoci python3 objdump; do
	command -v "$c" >/dev/null || die "$c not installed (scripts/install-deps.sh)"
done

# name:tag → the tag, and the full name as container runtimes resolve it (docker.io/library/ for a bare name).
case $IMAGE in
*@*) die "IMAGE must be name:tag, not a digest: $IMAGE" ;;
esac
name=${IMAGE%:*} tag=${IMAGE##*:}
if [ "$name" = "$IMAGE" ] || [[ $tag == */* ]]; then
	name=$IMAGE tag=latest
fi
first=${name%%/*}
if [ "$first" = "$name" ]; then
	full=docker.io/library/$name:$tag
elif [[ $first == *.* || $first == *:* || $first == localhost ]]; then
	full=$name:$tag
else
	full=docker.io/$name:$tag
fi

. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
sources=${XMESH_IMAGE_SOURCES:-}
if [ -z "$sources" ]; then
	for s in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
		[ -s "$s" ] && sources=$s && break
	done
fi
if [ -z "$sources" ] || [ ! -s "$sources" ]; then die "no apt sources file (set XMESH_IMAGE_SOURCES)"; fi

mapfile -t pkgs < <(runtime_packages "$BIN")
version=$("$BIN" version | awk '{ print $2 }')
epoch=$(git -C "$(dirname "$0")/.." log -1 --format=%ct 2>/dev/null || date +%s) # the commit time: reproducible
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
key=$(printf '%s\n' "$RECIPE" "$suite" "$(uname -m)" "${pkgs[@]}" | sha256sum | cut -c1-16)
base_tag=base-$key
t0=$(date +%s.%N)

mkdir -p "$WORK"
if [ "${XMESH_IMAGE_REFRESH:-0}" = 1 ] || ! umoci stat --image "$CACHE:$base_tag" >/dev/null 2>&1; then
	echo "build-image: root filesystem: Debian $suite essential + ${pkgs[*]} (mmdebstrap)"
	rm -rf "$CACHE" "$WORK/rootfs.tar"
	# SOURCE_DATE_EPOCH: file times (and so the layer) do not depend on when it was built.
	# merged-usr hook: /usr merged by the hook rather than the usrmerge package (which drags Perl in).
	SOURCE_DATE_EPOCH=$epoch mmdebstrap --quiet --variant=essential --mode=auto \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--include="$(
			IFS=,
			echo "${pkgs[*]}"
		)" \
		--dpkgopt=force-unsafe-io \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
		"$suite" "$WORK/rootfs.tar" "$sources" >"$WORK/mmdebstrap.log" 2>&1 || {
		tail -n 30 "$WORK/mmdebstrap.log" >&2
		die "mmdebstrap failed (log: $WORK/mmdebstrap.log; are the Debian package servers of $sources reachable?)"
	}
	umoci init --layout "$CACHE"
	umoci new --image "$CACHE:$base_tag"
	umoci raw add-layer --image "$CACHE:$base_tag" --history.created "$created" \
		--history.created_by "mmdebstrap --variant=essential $suite + ${pkgs[*]}" "$WORK/rootfs.tar"
	rm -f "$WORK/rootfs.tar"
	t1=$(date +%s.%N)
	echo "build-image: root filesystem layer cached in $CACHE ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s)"
else
	echo "build-image: root filesystem layer from the cache ($CACHE:$base_tag)"
fi

# The agent layer: /usr/bin/xmesh, owned by root, with a fixed time.
stage=$WORK/stage
rm -rf "$stage" "$WORK/oci" "$WORK/agent.tar"
install -D -m 0755 "$BIN" "$stage/usr/bin/xmesh"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$stage" -cf "$WORK/agent.tar" usr

# A copy of the cached layout (hard links: blobs are never written in place), the agent layer on top.
cp -al "$CACHE" "$WORK/oci"
L=$WORK/oci
umoci raw add-layer --image "$L:$base_tag" --tag "$tag" --history.created "$created" \
	--history.created_by "COPY build/xmesh /usr/bin/xmesh" "$WORK/agent.tar"
umoci config --image "$L:$tag" --created "$created" --history.created "$created" \
	--history.created_by "ENTRYPOINT [\"/usr/bin/xmesh\"] CMD [\"--help\"]" \
	--architecture "$(dpkg --print-architecture)" --os linux \
	--config.entrypoint /usr/bin/xmesh --config.cmd --help \
	--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--config.label org.opencontainers.image.title=xmesh \
	--config.label org.opencontainers.image.version="$version" \
	--config.label org.opencontainers.image.description="xmesh node agent on Debian $suite (Essential packages and the agent's libraries)"
umoci rm --image "$L:$base_tag"
umoci gc --layout "$L"
rm -rf "$stage" "$WORK/agent.tar"

# Name the image in the index (umoci writes only the tag).
python3 - "$L/index.json" "$tag" "$full" <<'EOF'
import json, sys
path, tag, full = sys.argv[1:]
index = json.load(open(path))
assert len(index["manifests"]) == 1, index
ann = index["manifests"][0].setdefault("annotations", {})
ann["org.opencontainers.image.ref.name"] = tag
ann["io.containerd.image.name"] = full
json.dump(index, open(path, "w"), separators=(",", ":"))
EOF

chmod -R a+rX "$L" # umoci writes 0600 files: readable by whoever loads the archive
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$L" -cf "$OUT.tmp" \
	oci-layout index.json blobs
mv "$OUT.tmp" "$OUT"
t2=$(date +%s.%N)
echo "build-image: $OUT: $IMAGE ($full), xmesh $version, $(du -k "$OUT" | cut -f1) KiB" \
	"in $(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f", b - a }') s"
