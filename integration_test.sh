#!/usr/bin/env bash
# integration_test.sh: build runnerlock once and prove G1-G5 of DESIGN.md
# with real processes, real signals and kill -9.
#
# It runs, in order, scripts/test-run.sh and, where present,
# scripts/test-hook.sh, scripts/test-legacy.sh, scripts/test-hostile.sh and
# scripts/stress.sh --short,
# each with RUNNERLOCK_BIN exported. Each prints `ok - ...` / `FAIL - ...`
# lines and exits non-zero on failure; this script counts them, prints
#
#   integration: N passed, M failed
#
# and exits non-zero when anything failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runnerlock-integration.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$root"
echo "# building runnerlock into $tmp"
bash scripts/build.sh "$tmp/runnerlock"
RUNNERLOCK_BIN=$tmp/runnerlock
export RUNNERLOCK_BIN

passed=0
failed=0
skipped=0
scripts_failed=()

# run_script PATH [ARG...]: run one sub-script, streaming its output, and
# add its ok/FAIL lines to the totals. A script that exits non-zero without
# printing a FAIL line still counts as one failure.
run_script() {
	local script=$1 out rc p f s
	shift
	out=$tmp/$(basename "$script").out
	echo "# --- $script $*"
	set +e
	bash "$script" "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	p=$(grep -c '^ok - ' "$out" || true)
	f=$(grep -c '^FAIL - ' "$out" || true)
	s=$(grep -c '^skip - ' "$out" || true)
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL - $script: exited $rc without a FAIL line"
		f=1
	fi
	if [ "$rc" -eq 0 ] && [ "$f" -gt 0 ]; then
		echo "FAIL - $script: printed $f FAIL lines but exited 0"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [ "$rc" -ne 0 ] || [ "$f" -gt 0 ]; then
		scripts_failed+=("$script (exit $rc)")
	fi
	echo "# --- $script: $p passed, $f failed, $s skipped, exit $rc"
}

run_script scripts/test-run.sh
for s in scripts/test-hook.sh scripts/test-legacy.sh scripts/test-hostile.sh; do
	if [ -f "$s" ]; then
		run_script "$s"
	else
		echo "# $s not present: not run"
	fi
done
if [ -f scripts/stress.sh ]; then
	run_script scripts/stress.sh --short
else
	echo "# scripts/stress.sh not present: not run"
fi

if [ "${#scripts_failed[@]}" -gt 0 ]; then
	echo "# failed: ${scripts_failed[*]}"
fi
[ "$skipped" -gt 0 ] && echo "# $skipped checks skipped"
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "${#scripts_failed[@]}" -eq 0 ]
