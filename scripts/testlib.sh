# testlib.sh: sourced by the test scripts in scripts/ (test-run, test-hook,
# test-legacy, test-hostile, stress). It owns the lines integration_test.sh
# counts, so that every script's checks are counted the same way:
#
#   ok - WHAT
#   FAIL - WHAT[: WHY]
#   skip - WHAT: WHY
#
# and the totals a script ends with (finish). With TESTLIB_STOP_ON_FAIL=1
# set before sourcing, the first FAIL ends the script: for scripts whose
# later steps build on the earlier ones.

PASS=0
FAILS=0
SKIPS=0

now_ms() {
	local n
	n=$(date +%s%N)
	echo $((n / 1000000))
}
T_START=$(now_ms)

ok() {
	echo "ok - $*"
	PASS=$((PASS + 1))
}

# fail WHAT [WHY]
fail() {
	if [ $# -gt 1 ]; then
		echo "FAIL - $1: $2"
	else
		echo "FAIL - $1"
	fi
	FAILS=$((FAILS + 1))
	if [ "${TESTLIB_STOP_ON_FAIL:-0}" = 1 ]; then
		finish "$(basename "$0")" || true
		exit 1
	fi
}

# skip WHAT WHY: a check that cannot run here (a tool is missing, not root).
skip() {
	echo "skip - $1: $2"
	SKIPS=$((SKIPS + 1))
}

# check WHAT WHY CMD...: ok when CMD succeeds, else FAIL with WHY.
check() {
	local what=$1 why=$2
	shift 2
	if "$@"; then ok "$what"; else fail "$what" "$why"; fi
}

# finish NAME: the script's totals; the status is non-zero after any FAIL.
finish() {
	echo "# $1: $PASS passed, $FAILS failed, $SKIPS skipped in $(($(now_ms) - T_START)) ms"
	[ "$FAILS" -eq 0 ]
}
