#!/usr/bin/env bash
# `xmesh agent --no-sockmap` redirects nothing; the admin switch turns redirection on and off at runtime while a
# stream runs (it finishes intact either way); and a restart with --no-sockmap switches off the programs the
# previous agent left pinned.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sockmap_lib.sh"
xms_init "$@"
xms_pair
MiB=$((1024 * 1024))
out="$XMT_TMP/echo.out"

XMT_SUBTEST="--no-sockmap"
xmt_agent_start --no-sockmap
xms_admin sockmap status | grep '^sockmap: off' >/dev/null || xmt_fail "status: $(xms_admin sockmap status | head -n 1)"
xms_echo c1 "$out" --addr "$XMT_VIP:$XMT_PORT" --bytes $((10 * MiB)) || xmt_fail "echo: $(cat "$out")"
[ "$(xms_stat redirected_bytes)" = 0 ] || xmt_fail "redirected $(xms_stat redirected_bytes) bytes with --no-sockmap"

XMT_SUBTEST="switch during a stream"
# 40 MiB echoed at 160 Mbit/s (about 2 s): on after 0.5 s, off after 1.2 s, on again.
xmt_bg long c1 mesh "$XM_STREAM" echo --addr "$XMT_VIP:$XMT_PORT" --bytes $((40 * MiB)) --rate-mbps 160 \
	--timeout-ms 10000
sleep 0.5
xms_admin sockmap on | grep '^ok' >/dev/null || xmt_fail "admin sockmap on refused"
sleep 0.7
xms_admin sockmap off | grep '^ok' >/dev/null || xmt_fail "admin sockmap off refused"
sleep 0.3
xms_admin sockmap on | grep '^ok' >/dev/null || xmt_fail "admin sockmap on refused"
xmt_wait_for "$(xmt_bg_log long)" '^bytes=' 20 "${XMT_BG[long]}" || xmt_fail "stream did not finish"
xmt_bg_stop long || xmt_fail "the stream broke across the switches: $(cat "$(xmt_bg_log long)")"

XMT_SUBTEST="on: new connections are redirected"
r0=$(xms_stat redirected_bytes)
xms_echo c1 "$out" --addr "$XMT_VIP:$XMT_PORT" --bytes $((10 * MiB)) || xmt_fail "echo: $(cat "$out")"
r1=$(xms_stat redirected_bytes)
(((r1 - r0) >= 20 * MiB)) || xmt_fail "switched on, but only $((r1 - r0)) bytes redirected"

XMT_SUBTEST="restart with --no-sockmap"
xmt_agent_stop
xmt_agent_start --no-sockmap
r0=$(xms_stat redirected_bytes)
xms_echo c1 "$out" --addr "$XMT_VIP:$XMT_PORT" --bytes $((10 * MiB)) || xmt_fail "echo: $(cat "$out")"
[ "$(xms_stat redirected_bytes)" = "$r0" ] || xmt_fail "a restart with --no-sockmap left redirection on"
XMT_SUBTEST=""
xmt_note "stream intact across on/off/on: $(xmt_field "$(xmt_bg_log long)" bytes) bytes"
xmt_pass "--no-sockmap and the runtime switch"
