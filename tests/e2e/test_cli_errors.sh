#!/usr/bin/env bash
# What the CLI says when there is nothing to act on, or a flag names the wrong thing: `xmesh cleanup` and
# `xmesh maps` on a directory without pins exit 1 with one line that says so; `xmesh agent` refuses a
# --cgroup that is no cgroup v2 directory and a --config that does not exist (never a "ready" agent that
# serves nothing), and creates the missing directories of --admin (mode 0700).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 1 1
xmt_config_std b1
out="$XMT_TMP/out"
missing="$XMT_TMP/no-such-pins"
empty="$XMT_TMP/empty-pins"
mkdir "$empty"

# expect_fail WHAT WANT_RE CMD...: CMD exits 1 (not 0, not a crash, not a time-out) and prints WANT_RE.
expect_fail() {
	local what=$1 re=$2 rc=0
	shift 2
	timeout -k 5 20 "$@" >"$out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || xmt_fail "$what: exited $rc, expected 1: $(head -n 5 "$out")"
	grep -qE -- "$re" "$out" || xmt_fail "$what: no '$re' in: $(head -n 5 "$out")"
	! grep -q '\<ready\>' "$out" || xmt_fail "$what: printed ready: $(head -n 5 "$out")"
}

XMT_SUBTEST="cleanup without pins"
expect_fail "cleanup --bpffs (missing)" "nothing to remove: no xmesh pins under $missing" \
	"$XMESH" cleanup --bpffs "$missing" --cgroup "$XMT_CG"

XMT_SUBTEST="maps without pins"
for d in "$missing" "$empty"; do
	expect_fail "maps --bpffs $d" "^xmesh maps: no xmesh pins under $d\$" "$XMESH" maps --bpffs "$d"
	[ "$(wc -l <"$out")" = 1 ] || xmt_fail "maps --bpffs $d printed more than one line: $(head -n 5 "$out")"
	expect_fail "maps --json --bpffs $d" "no xmesh pins under $d" "$XMESH" maps --json --bpffs "$d"
done

# The agent in the node namespace with this test's pins; each case adds the flags it tests.
agent=(nsenter --net="/run/netns/$XMT_NODE" -- "$XMESH" agent --bpffs "$XMT_PIN" --node "$XMT_NODE_NAME"
	--metrics 127.0.0.1:15090)

XMT_SUBTEST="--cgroup not a cgroup"
expect_fail "--cgroup $XMT_TMP" "--cgroup $XMT_TMP: not a cgroup v2 directory" \
	"${agent[@]}" --config "$XMT_CONF" --cgroup "$XMT_TMP" --admin "$XMT_ADMIN"
expect_fail "--cgroup (missing)" "--cgroup $XMT_CG/nope: No such file or directory" \
	"${agent[@]}" --config "$XMT_CONF" --cgroup "$XMT_CG/nope" --admin "$XMT_ADMIN"

XMT_SUBTEST="--config missing"
expect_fail "--config (missing)" "--config $XMT_TMP/nope.yaml: No such file or directory" \
	"${agent[@]}" --config "$XMT_CONF" --config "$XMT_TMP/nope.yaml" --cgroup "$XMT_CG" --admin "$XMT_ADMIN"

XMT_SUBTEST="--admin two levels down"
XMT_ADMIN="$XMT_TMP/run/xmesh/admin.sock"
xmt_agent_start
[ -S "$XMT_ADMIN" ] || xmt_fail "no admin socket at $XMT_ADMIN"
for d in "$XMT_TMP/run" "$XMT_TMP/run/xmesh"; do
	[ "$(stat -c %a "$d")" = 700 ] || xmt_fail "$d has mode $(stat -c %a "$d"), expected 700"
done
xmt_xmesh status --admin "$XMT_ADMIN" >"$out" 2>&1 || xmt_fail "status on $XMT_ADMIN failed: $(head -n 3 "$out")"
grep -qF "$XMT_VIP" "$out" || xmt_fail "status names no VIP: $(head -c 400 "$out")"
XMT_SUBTEST=""
xmt_pass "cleanup and maps without pins, --cgroup, --config, --admin"
