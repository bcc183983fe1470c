#!/usr/bin/env bash
# `make test`: unit tests (criterion), BPF tests (criterion, real kernel), end-to-end tests (namespaces).
# Runs every suite even when one fails, then exits non-zero if any did.
set -uo pipefail

BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 1
failed=()

run() {
	local name=$1
	shift
	echo "==> $name"
	if ! "$@"; then
		failed+=("$name")
	fi
}

run "unit tests" "$BUILD/tests/unit_tests" --jobs 2
if [ "$(id -u)" -ne 0 ]; then
	echo "==> BPF and end-to-end tests: SKIPPED (need root for BPF, cgroups and network namespaces)"
else
	# BPF tests attach to cgroups and count connections: one at a time keeps them independent.
	run "BPF tests" "$BUILD/tests/bpf_tests" --jobs 1
	run "end-to-end tests" tests/e2e/run.sh "$BUILD"
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "make test: FAILED: ${failed[*]}"
	exit 1
fi
echo "make test: all suites passed"
