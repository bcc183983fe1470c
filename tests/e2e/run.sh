#!/usr/bin/env bash
# Runs the e2e tests: every tests/e2e/test_*.sh (or those whose names contain one of the PATTERNs), each in
# its own process with a time limit, one after another (they share the machine's BPF and cgroup limits).
#
#   tests/e2e/run.sh BUILD_DIR [PATTERN...]
#
# One line per test: "PASS name (Ns) [notes]", "FAIL name (Ns)" followed by the tail of its log, or
# "SKIP name: KERNEL: reason"; then exactly "e2e: N passed, N failed, N skipped". Exit 1 if any test failed.
# A test exits 0 to pass, 77 to skip (its last "SKIP: reason" line says why), anything else fails. A skip
# counts as one only when its reason is a kernel limitation ("SKIP: KERNEL: ...", xmt_skip_kernel); any
# other skip (no root, a tool or a build missing) counts as a failure.
# Env: XMT_TEST_TIMEOUT (seconds per test, default 120), XMT_LOG_DIR (keep every test's full log there).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
shift || true
limit=${XMT_TEST_TIMEOUT:-120}
logdir=${XMT_LOG_DIR:-}
tmp=$(mktemp -d /tmp/xmesh-e2e.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT
[ -n "$logdir" ] && mkdir -p "$logdir"

passed=0 failed=0 skipped=0
for t in "$here"/test_*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	name=${name#test_}
	if [ $# -gt 0 ]; then
		match=0
		for p in "$@"; do
			case $name in *"$p"*) match=1 ;; esac
		done
		[ "$match" = 1 ] || continue
	fi
	log="$tmp/$name.log"
	notes="$tmp/$name.notes"
	: >"$notes"
	start=$(date +%s)
	rc=0
	# -k: a test that ignores SIGTERM (stuck in its teardown) is killed 20 s later.
	XMT_NOTE_FILE=$notes timeout -k 20 "$limit" bash "$t" "$build" >"$log" 2>&1 </dev/null || rc=$?
	secs=$(($(date +%s) - start))
	[ -n "$logdir" ] && cp "$log" "$logdir/$name.log"
	case $rc in
	0)
		passed=$((passed + 1))
		note=$(awk '{ printf "%s%s", sep, $0; sep = " | " }' "$notes")
		echo "PASS $name (${secs}s)${note:+ - $note}"
		;;
	77)
		reason=$(sed -n 's/^SKIP: //p' "$log" | tail -n 1)
		case $reason in
		"KERNEL: "*)
			skipped=$((skipped + 1))
			echo "SKIP $name: $reason"
			;;
		*)
			# Only the kernel may excuse a test; a missing tool or build means it did not run.
			failed=$((failed + 1))
			echo "FAIL $name (${secs}s) - skipped for a reason that is no kernel limitation: ${reason:-none given}"
			;;
		esac
		;;
	*)
		failed=$((failed + 1))
		why=""
		[ "$rc" = 124 ] || [ "$rc" = 137 ] && why=" - timed out after ${limit}s"
		echo "FAIL $name (${secs}s)$why"
		tail -n 25 "$log" | sed 's/^/    | /'
		;;
	esac
done

echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
