#!/usr/bin/env bash
# `make vmtest`: boots every kernel of vmtests/kernels.txt under QEMU with vmtests/run, runs the BPF test
# binary in each, and prints a table kernel × passed / failed / skipped with the time each took.
#
#   vmtests/run-matrix.sh [BUILD_DIR] [PACKAGE...]     (packages given here replace vmtests/kernels.txt)
#
# Environment: VMTEST_TIMEOUT (seconds per kernel, default 3000), VMTEST_JOBS (kernels booted at once,
# default: the number of host CPUs), VMTEST_ARGS (extra vmtests/run options, e.g. "--mem 2048").
# Exits non-zero if any kernel failed, timed out, panicked or could not be prepared. A package the apt
# registry does not offer is listed as "not available" and does not fail the run.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
shift || true
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
TIMEOUT=${VMTEST_TIMEOUT:-3000}
JOBS=${VMTEST_JOBS:-$(nproc)}
LOGDIR="$BUILD/vmtests/logs"
read -r -a EXTRA <<<"${VMTEST_ARGS:-}"

if [ $# -gt 0 ]; then
	PACKAGES=("$@")
else
	mapfile -t PACKAGES < <(sed 's/#.*//; s/^[[:space:]]*//; s/[[:space:]]*$//; /^$/d' "$ROOT/vmtests/kernels.txt")
fi

"$ROOT/vmtests/run" --build "$BUILD" --check || exit 1
mkdir -p "$LOGDIR"

available() {
	local cand
	[ -s "$BUILD/vmtests/cache/resolved/$1" ] && return 0
	cand=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	[ -n "$cand" ] && [ "$cand" != "(none)" ]
}

nocolor() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1"; }

# What is worth seeing when a kernel did not pass: failed tests and their messages (each distinct line once),
# the verifier's reason for each rejected program, or the end of the console when there was no result.
show_failure() {
	local status=$1 log=$2 clean
	clean=$(nocolor "$log")
	echo "---- $status: ${log#"$ROOT"/}"
	if [ "$status" = failed ] && grep -aqE '^\[----\] Criterion' <<<"$clean"; then
		grep -aE '^\[FAIL\]|^\[----\] .*(Assertion|Warning! The test)|^\[----\]   [^ ]|xmesh error|libbpf: .*(failed|error)' \
			<<<"$clean" | awk '!seen[$0]++' | head -60
		grep -a -B1 '^processed [0-9]* insns' <<<"$clean" | grep -avE '^processed|^--$' |
			awk '!seen[$0]++' | sed 's/^/verifier: /' | head -10
	else
		tail -40 <<<"$clean"
	fi
	echo "----"
}

START=$(date +%s)
declare -A PIDS=()
runnable=()
for pkg in "${PACKAGES[@]}"; do
	available "$pkg" || continue
	runnable+=("$pkg")
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
	echo "==> vmtest $pkg"
	rm -f "$LOGDIR/$pkg.result"
	"$ROOT/vmtests/run" --build "$BUILD" --timeout "$TIMEOUT" --quiet "${EXTRA[@]}" "$pkg" &
	PIDS[$pkg]=$!
done

rows=()
bad=0
for pkg in "${PACKAGES[@]}"; do
	if [ -z "${PIDS[$pkg]:-}" ]; then
		rows+=("$(printf '%-34s not available in the apt registry (apt-cache policy %s)' "$pkg" "$pkg")")
		continue
	fi
	wait "${PIDS[$pkg]}"
	rc=$?
	result="$LOGDIR/$pkg.result"
	if [ ! -f "$result" ]; then
		rows+=("$(printf '%-34s could not be prepared (exit %d, see above)' "$pkg" "$rc")")
		bad=1
		continue
	fi
	kernel="" status="" passed="" failed="" skipped="" log="" total_seconds=""
	while IFS='=' read -r k v; do
		case $k in kernel | status | passed | failed | skipped | log | total_seconds) printf -v "$k" '%s' "$v" ;; esac
	done <"$result"
	case $status in
	passed) verdict="" ;;
	failed) verdict="  FAILED" ;;
	timeout) verdict="  TIMEOUT after ${TIMEOUT} s" ;;
	panic) verdict="  KERNEL PANIC" ;;
	*) verdict="  NO REPORT from the guest" ;;
	esac
	[ "$status" = passed ] || { bad=1; show_failure "$status" "$log"; }
	rows+=("$(printf '%-34s passed %-3s failed %-3s skipped %-3s (%s s)%s' "$kernel" "${passed:--}" \
		"${failed:--}" "${skipped:--}" "$total_seconds" "$verdict")")
done

echo
echo "vmtest matrix (logs in ${LOGDIR#"$ROOT"/}/, $JOBS at a time):"
printf '%s\n' "${rows[@]}"
printf '%-34s covered by make test\n' "host $(uname -r)"
echo "vmtest: $([ $bad -eq 0 ] && echo all kernels passed || echo FAILED) in $(($(date +%s) - START)) s"
exit $bad
