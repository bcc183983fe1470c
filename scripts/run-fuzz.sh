#!/usr/bin/env bash
# `make fuzz`: each libFuzzer target of BUILD/fuzz for SECONDS over its seed corpus (tests/fuzz/corpus/NAME/)
# and what earlier runs found (BUILD/fuzz-corpus/NAME/, not committed), with tests/fuzz/NAME.dict when there
# is one. A crash, leak, UB or timeout leaves its input in BUILD/fuzz-artifacts/ and fails the run.
set -uo pipefail

BUILD=${1:-build-fuzz}
SECONDS_PER_TARGET=${2:-60}
cd "$(dirname "$0")/.." || exit 1
failed=()

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for bin in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	target=$(basename "$bin")
	name=${target#fuzz_}
	seeds=tests/fuzz/corpus/$name
	work=$BUILD/fuzz-corpus/$name
	artifacts=$BUILD/fuzz-artifacts
	mkdir -p "$work" "$artifacts"
	args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
		-artifact_prefix="$artifacts/$name-")
	[ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
	[ -d "$seeds" ] || { echo "fuzz: $target has no seed corpus $seeds" >&2; failed+=("$target"); continue; }
	echo "==> fuzz $name (${SECONDS_PER_TARGET}s)"
	if ! "$bin" "${args[@]}" "$work" "$seeds" >"$BUILD/fuzz-$name.log" 2>&1; then
		grep -E -A30 'ERROR|runtime error|Test unit written' "$BUILD/fuzz-$name.log" | head -60
		failed+=("$target")
	fi
	grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$BUILD/fuzz-$name.log" | tr '\n' ' '
	echo
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "make fuzz: FAILED: ${failed[*]} (inputs in $BUILD/fuzz-artifacts/)"
	exit 1
fi
echo "make fuzz: every target ran ${SECONDS_PER_TARGET}s without a finding"
