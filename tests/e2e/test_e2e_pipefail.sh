#!/usr/bin/env bash
# The e2e scripts run under `set -o pipefail`, where `PRODUCER | grep -q PATTERN` is a race: grep -q exits at its
# first match, a PRODUCER still writing dies of SIGPIPE, and the pipeline's status is 141 -- "not found" though the
# line was there (l7_edges failed so about one run in five on a metrics file; `!` in front turns it into a false
# pass). A pipeline ends in `grep PATTERN >/dev/null` (which reads all its input), or one grep reads the file.
# This test reads the scripts only: no root, no agent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bad=$(grep -nE '\|[[:space:]]*grep([[:space:]]+[^|]*)?[[:space:]](-[a-zA-Z]*[qm][a-zA-Z0-9]*|--quiet|--silent|--max-count(=[0-9]+)?)([[:space:]]|$)' \
	"$here"/*.sh | grep -vE '^[^:]+:[0-9]+:[[:space:]]*#' || true)
if [ -n "$bad" ]; then
	echo "FAIL: a pipeline ending in grep -q (or -m) is a SIGPIPE race under pipefail: end it in" \
		"'grep PATTERN >/dev/null' instead:"
	echo "$bad"
	exit 1
fi
echo "PASS: no pipeline ends in grep -q or grep -m in $here"
