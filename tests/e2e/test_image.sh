#!/usr/bin/env bash
# `make image` (scripts/build-image.sh): builds the agent's OCI image from Debian packages (the root
# filesystem layer is cached under BUILD/image, so only a first run downloads packages), then checks it
# with tools other than the one that wrote it:
#   - a rebuild comes from the cache, in seconds;
#   - skopeo reads the archive (manifest, config: entrypoint, command, version label) and copies it, which
#     verifies every blob's digest; umoci unpacks it;
#   - in the unpacked root filesystem (chroot: none of the host's libraries), ldd finds every library,
#     `xmesh version` runs with every symbol bound at start (LD_BIND_NOW) and `xmesh validate` reads the
#     demo config (libyaml, PCRE2); the binary is build/xmesh; no bloat (size bound);
#   - podman loads the archive under the name the DaemonSet uses and runs the image with --network none and
#     --pull never (nothing is fetched): `xmesh version`, the default command (usage), `validate` on a
#     mounted config;
#   - the Dockerfile installs the same runtime packages and sets the same entrypoint and command, and
#     deploy/daemonset.yaml names the image `make image` builds.
# podman keeps its storage in this test's directory and its containers in this test's own cgroup
# (xmesh-image-test.PID in each hierarchy), both removed at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || xmt_skip "build directory ${1:-build} missing"
XMESH=$BUILD/xmesh
ARCHIVE=$BUILD/xmesh-image.tar
[ "$(id -u)" -eq 0 ] || xmt_skip "needs root (podman, chroot)"
[ -x "$XMESH" ] || xmt_skip "agent binary $XMESH not built (make)"
for c in mmdebstrap umoci skopeo podman runc python3 chroot; do
	command -v "$c" >/dev/null || xmt_skip "command $c not installed (scripts/install-deps.sh)"
done

TMP=$(mktemp -d "/tmp/xmesh-test-image-$$.XXXXXX")
CGPARENT=/xmesh-image-test.$$
# runc: crun refuses a host with cgroup v1 and v2 both mounted (as this one may be).
podman_with() { # STORAGE_DRIVER
	PODMAN=(podman --root "$TMP/podman/root" --runroot "$TMP/podman/run" --tmpdir "$TMP/podman/tmp"
		--storage-driver "$1" --cgroup-manager cgroupfs --events-backend file --runtime runc)
}
podman_with overlay
runc_state_made=0
[ -d /run/runc ] || runc_state_made=1
cleanup() {
	local rc=$? d
	set +e
	trap - EXIT ERR
	if [ -d "$TMP/podman/root" ]; then
		"${PODMAN[@]}" rm -af >/dev/null 2>&1
		"${PODMAN[@]}" rmi -af >/dev/null 2>&1
	fi
	for d in $(findmnt -rn -o TARGET | grep "^$TMP/" | sort -r); do umount -l "$d"; done
	for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d -path "*$CGPARENT*" 2>/dev/null | sort -r); do
		rmdir "$d" 2>/dev/null || echo "cleanup: could not remove cgroup $d" >&2
	done
	rm -rf -- "$TMP"
	# runc's state directory, if this test made it (empty once the containers are gone)
	[ "$runc_state_made" = 1 ] && rmdir /run/runc 2>/dev/null
	exit "$rc"
}
trap cleanup EXIT
trap 'xmt_fail "line $LINENO: unexpected failure of: $BASH_COMMAND"' ERR
trap 'exit 143' TERM
export TMPDIR=$TMP # podman and skopeo stage blobs there

version=$("$XMESH" version | awk '{ print $2 }')
image=$(sed -n 's/^IMAGE *?= *//p' "$ROOT/Makefile")
[ -n "$image" ] || xmt_fail "no IMAGE ?= default in the Makefile"
full=docker.io/library/$image # a bare name:tag, as the DaemonSet's
[[ $image == */* ]] && xmt_fail "the test expects a bare name:tag as the default IMAGE, not $image"

# --- build, then again from the cache
xmt_log "build"
t0=$(date +%s.%N)
(cd "$ROOT" && scripts/build-image.sh "$BUILD" "$image") >"$TMP/build1.log" 2>&1 ||
	xmt_fail "build-image failed: $(tail -n 15 "$TMP/build1.log")"
t1=$(date +%s.%N)
cat "$TMP/build1.log"
(cd "$ROOT" && scripts/build-image.sh "$BUILD" "$image") >"$TMP/build2.log" 2>&1 ||
	xmt_fail "second build-image failed: $(tail -n 15 "$TMP/build2.log")"
t2=$(date +%s.%N)
cat "$TMP/build2.log"
grep 'from the cache' "$TMP/build2.log" >/dev/null || xmt_fail "the rebuild did not use the cached root filesystem"
first=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
again=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
awk -v s="$again" 'BEGIN { exit !(s < 15) }' || xmt_fail "a cached rebuild took $again s (bound 15 s)"
size_kib=$(du -k "$ARCHIVE" | cut -f1)
xmt_note "image $((size_kib / 1024)) MiB, built in $first s, rebuilt from the cache in $again s"

# --- skopeo: the archive as another implementation reads it
xmt_log "skopeo"
skopeo inspect --raw "oci-archive:$ARCHIVE" >"$TMP/manifest.json"
skopeo inspect --config "oci-archive:$ARCHIVE" >"$TMP/config.json"
python3 - "$TMP/manifest.json" "$TMP/config.json" "$version" <<'EOF' || xmt_fail "manifest or config not as expected"
import json, sys
manifest, config, version = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
check(manifest["schemaVersion"] == 2 and manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json") == "application/vnd.oci.image.manifest.v1+json", f"manifest type: {manifest.get('mediaType')}")
check(manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json", "config media type")
layers = manifest["layers"]
check(len(layers) == 2, f"{len(layers)} layers, expected 2 (root filesystem, agent)")
check(all(l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" for l in layers), "layer media types")
c = config["config"]
check(config["os"] == "linux", "os")
check(c["Entrypoint"] == ["/usr/bin/xmesh"], f"entrypoint {c.get('Entrypoint')}")
check(c["Cmd"] == ["--help"], f"cmd {c.get('Cmd')}")
check(c["Labels"]["org.opencontainers.image.version"] == version, f"version label {c['Labels']}")
check(len(config["rootfs"]["diff_ids"]) == 2, "diff_ids")
print(f"manifest: 2 layers, {sum(l['size'] for l in layers)} bytes; entrypoint {c['Entrypoint']}, cmd {c['Cmd']}")
EOF
# A copy reads every blob and checks its digest and size.
skopeo copy --quiet "oci-archive:$ARCHIVE" "oci:$TMP/copy:latest" >/dev/null 2>"$TMP/copy.err" ||
	xmt_fail "skopeo copy failed (bad blob?): $(tail -n 5 "$TMP/copy.err")"

# --- umoci: unpack, then run from the root filesystem alone
xmt_log "umoci unpack and chroot"
mkdir "$TMP/layout"
tar -C "$TMP/layout" -xf "$ARCHIVE"
python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["manifests"][0]["annotations"]; print(a["org.opencontainers.image.ref.name"], a["io.containerd.image.name"])' \
	"$TMP/layout/index.json" >"$TMP/names"
[ "$(cat "$TMP/names")" = "${image##*:} $full" ] || xmt_fail "index names: $(cat "$TMP/names"), expected ${image##*:} $full"
umoci unpack --image "$TMP/layout:${image##*:}" "$TMP/bundle" >/dev/null
R=$TMP/bundle/rootfs
cmp "$R/usr/bin/xmesh" "$XMESH" || xmt_fail "the image's /usr/bin/xmesh is not $XMESH"
rootfs_mib=$(($(du -sk "$R" | cut -f1) / 1024))
echo "root filesystem: $rootfs_mib MiB"
[ "$rootfs_mib" -lt 100 ] || xmt_fail "root filesystem is $rootfs_mib MiB (bound 100: something big came in)"
chroot "$R" /usr/bin/ldd /usr/bin/xmesh >"$TMP/ldd" 2>&1 || xmt_fail "ldd in the image failed: $(cat "$TMP/ldd")"
if grep 'not found' "$TMP/ldd" >/dev/null; then xmt_fail "libraries missing in the image: $(grep 'not found' "$TMP/ldd")"; fi
out=$(chroot "$R" /usr/bin/env -i LD_BIND_NOW=1 /usr/bin/xmesh version 2>&1) ||
	xmt_fail "xmesh version in the chroot failed: $out"
[ "$out" = "xmesh $version" ] || xmt_fail "chroot: xmesh version said '$out', expected 'xmesh $version'"
mkdir "$R/tmp/cfg"
cp "$ROOT"/examples/demo/*.yaml "$R/tmp/cfg/"
out=$(chroot "$R" /usr/bin/env -i LD_BIND_NOW=1 /usr/bin/xmesh validate /tmp/cfg 2>&1) ||
	xmt_fail "xmesh validate in the chroot failed: $out"
echo "chroot: ldd finds every library; version and validate run with LD_BIND_NOW=1"

# --- podman: load under the DaemonSet's name, run without network and without pulling
xmt_log "podman"
# The ulimits are below any hard limit: podman's defaults are above this sandbox's, which cannot raise them.
if ! "${PODMAN[@]}" load -q -i "$ARCHIVE" >"$TMP/load.log" 2>&1; then
	# overlay needs a file system that can be its upper layer; vfs works anywhere (a copy per container)
	xmt_log "podman with overlay storage failed ($(tail -n 1 "$TMP/load.log")): vfs"
	"${PODMAN[@]}" rmi -af >/dev/null 2>&1 || true
	rm -rf "$TMP/podman"
	podman_with vfs
	"${PODMAN[@]}" load -q -i "$ARCHIVE" >"$TMP/load.log" 2>&1 || xmt_fail "podman load failed: $(cat "$TMP/load.log")"
fi
grep -F "$full" "$TMP/load.log" >/dev/null || xmt_fail "podman loaded $(cat "$TMP/load.log"), expected $full"
prun() {
	"${PODMAN[@]}" run --rm --network none --pull never --cgroup-parent "$CGPARENT" \
		--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$@"
}
out=$(prun -e LD_BIND_NOW=1 "$image" version 2>&1) || xmt_fail "podman run $image version failed: $out"
[ "$out" = "xmesh $version" ] || xmt_fail "podman: xmesh version said '$out', expected 'xmesh $version'"
out=$(prun "$image" 2>&1) || xmt_fail "podman run $image (default command) failed: $out"
grep '^usage: xmesh COMMAND' <<<"$out" >/dev/null || xmt_fail "default command printed: $out"
out=$(prun -v "$ROOT/examples/demo:/cfg:ro" "$image" validate /cfg 2>&1) ||
	xmt_fail "podman run $image validate /cfg failed: $out"
echo "podman: $full runs version, --help and validate with --network none"

# --- the Dockerfile and the DaemonSet agree with the image
xmt_log "Dockerfile and DaemonSet"
want=$( (cd "$ROOT" && scripts/build-image.sh --packages "$BUILD") | xargs)
got=$(sed -n 's/.*apt-get install -y --no-install-recommends \(.*\) \\$/\1/p' "$ROOT/Dockerfile" | xargs -n1 | sort | xargs)
[ "$got" = "$want" ] || xmt_fail "Dockerfile installs '$got'; the binary needs '$want'"
grep -Fx 'ENTRYPOINT ["/usr/bin/xmesh"]' "$ROOT/Dockerfile" >/dev/null || xmt_fail "Dockerfile ENTRYPOINT differs"
grep -Fx 'CMD ["--help"]' "$ROOT/Dockerfile" >/dev/null || xmt_fail "Dockerfile CMD differs"
grep -Fx 'COPY build/xmesh /usr/bin/xmesh' "$ROOT/Dockerfile" >/dev/null || xmt_fail "Dockerfile COPY differs"
ds_image=$(sed -n 's/^ *image: *//p' "$ROOT/deploy/daemonset.yaml")
[ "$ds_image" = "$image" ] || xmt_fail "deploy/daemonset.yaml runs image '$ds_image', make image builds '$image'"
grep -F 'command: [/usr/bin/xmesh]' "$ROOT/deploy/daemonset.yaml" >/dev/null ||
	xmt_fail "deploy/daemonset.yaml does not run /usr/bin/xmesh"

xmt_pass "image $image: OCI archive valid (skopeo, umoci), runs in a chroot and in podman --network none"
