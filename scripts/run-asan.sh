#!/usr/bin/env bash
# `make test-asan`: the unit tests, then the BPF tests (one at a time, root only), built with ASan and UBSan.
# Criterion runs each test in a worker process and ignores a worker's exit code once the test has reported,
# so LeakSanitizer's report at the worker's exit must abort (abort_on_error): criterion then calls the test
# "crashed during its setup or teardown" and exits 1. UBSan stops at the first error (halt_on_error).
set -uo pipefail

BUILD=${1:-build-asan}
cd "$(dirname "$0")/.." || exit 1
failed=()

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run() {
	local name=$1
	shift
	echo "==> $name (ASan+UBSan)"
	if ! "$@"; then
		failed+=("$name")
	fi
}

# One job: with two, criterion's own runner leaks 48 bytes in its main process (calloc inside
# criterion_run_all_tests, no frame of ours) when suites with .timeout run side by side (the l7_proxy
# suites), and LeakSanitizer then fails a run whose every test passed.
run "unit tests" "$BUILD/tests/unit_tests" --jobs 1
if [ "$(id -u)" -ne 0 ]; then
	echo "==> BPF tests: SKIPPED (need root for BPF and cgroups)"
else
	run "BPF tests" "$BUILD/tests/bpf_tests" --jobs 1
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "make test-asan: FAILED: ${failed[*]}"
	exit 1
fi
echo "make test-asan: all suites passed"
