#!/usr/bin/env bash
# test-hostile.sh: runnerlock in hostile surroundings, with real processes.
#  - a descriptor the caller left open on fd 9 is not pinned by a detached
#    run started by `hook` (nor by a `run`'s command);
#  - a full disk (/dev/full) or a read-only event log costs one warning line,
#    never the run or the lock;
#  - the lock file deleted while a run holds it is noticed and logged at
#    once, and a later run still works.
# Prints ok/FAIL lines; exits non-zero on any failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
tmp=$(mktemp -d /tmp/runnerlock-hostile.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	pkill -9 -f "$tmp/" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# ok, fail WHAT WHY, check WHAT WHY CMD..., finish
. "$here/testlib.sh"
wait_for() { # TENTHS CMD...
	local n=$1
	shift
	until "$@"; do
		n=$((n - 1))
		[ "$n" -le 0 ] && return 1
		sleep 0.1
	done
}

B=${RUNNERLOCK_BIN:-}
if [ -z "$B" ]; then
	B=$tmp/runnerlock
	bash "$repo/scripts/build.sh" "$B" || { echo "FAIL - build"; exit 1; }
fi
export XDG_STATE_HOME=$tmp/state
state() { "$B" status --lock "$1" --json 2>/dev/null | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'; }
is_free() { [ "$(state "$1")" = free ]; }

# --- fd 9 is not pinned by a detached run -----------------------------------
L=$tmp/fd9.lock
exec 9>"$tmp/wrapper.lock"
flock 9
printf '{"session_id":"fd9"}\n' | "$B" hook --lock "$L" --log "$tmp/fd9.log" \
	--runner-log "$tmp/fd9.out" -- sh -c 'ls -l /proc/self/fd >"$0"; sleep 30' "$tmp/fd9.fds"
rc=$?
wait_for 50 test -s "$tmp/fd9.fds"
sup=$("$B" status --lock "$L" --json | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
pids+=("$sup")
exec 9>&-
check "hook with a stray fd 9 starts its run (rc=$rc)" "rc=$rc" test "$rc" -eq 0
check "the detached run's command has no fd 9" "$(cat "$tmp/fd9.fds")" \
	eval '! grep -q " 9 -> " "$tmp/fd9.fds"'
check "the detached supervisor ($sup) has no descriptor of the caller's fd 9" \
	"$(ls -l /proc/"$sup"/fd 2>&1)" \
	eval '[ -n "$sup" ] && ! ls -l /proc/$sup/fd | grep -q wrapper.lock'
check "the wrapper's lock on fd 9 is free once the hook has returned" "still held" \
	flock -n "$tmp/wrapper.lock" true
kill -TERM "$sup" 2>/dev/null
wait_for 100 is_free "$L"

# --- a log that cannot be written costs a line, never the run ---------------
L=$tmp/log.lock
out=$("$B" run --lock "$L" --log /dev/full -- sh -c 'echo ran >"$0"' "$tmp/full.ran" 2>&1)
rc=$?
check "a run whose event log is a full disk (/dev/full) runs and exits 0 (rc=$rc)" "$out" \
	eval '[ "$rc" -eq 0 ] && [ -s "$tmp/full.ran" ]'
check "and says so in one warning line" "$out" \
	eval '[ "$(grep -c "^runnerlock: warning:" <<<"$out")" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ]'
check "and the lock is free afterwards" "$(state "$L")" is_free "$L"

touch "$tmp/ro.log"
chmod 0400 "$tmp/ro.log"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chown 65534:65534 "$tmp" "$tmp/ro.log"
	as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
	as=()
fi
out=$("${as[@]}" "$B" run --lock "$tmp/ro.lock" --log "$tmp/ro.log" -- true 2>&1)
rc=$?
check "a run whose event log is read-only runs and exits 0 (rc=$rc)" "$out" test "$rc" -eq 0
check "and warns once on stderr" "$out" \
	eval '[ "$(grep -c "^runnerlock: warning:" <<<"$out")" -eq 1 ]'
chown -R "$(id -u):$(id -g)" "$tmp" 2>/dev/null

# --- the lock file deleted during a run ------------------------------------
L=$tmp/del.lock
"$B" run --lock "$L" --log "$tmp/del.log" -- sleep 3 &
holder=$!
pids+=("$holder")
wait_for 50 eval '[ "$(state "$L")" = held ]'
sleep 1.2 # past the first second, when the run's watch on the file starts
t0=$(date +%s%N)
rm -f "$L"
wait_for 30 grep -q 'reason="lock-file-replaced"' "$tmp/del.log"
t1=$(date +%s%N)
check "deleting the lock file during a run is logged at once ($(( (t1 - t0) / 1000000 )) ms)" \
	"log: $(cat "$tmp/del.log")" grep -q 'error level="error" .*reason="lock-file-replaced"' "$tmp/del.log"
wait "$holder"
rc=$?
check "the run itself goes on and ends with its own status (rc=$rc)" "rc=$rc" test "$rc" -eq 0
"$B" run -n --lock "$L" --log "$tmp/del.log" -- true
check "a later run creates the lock file afresh and runs" "rc=$?" test -f "$L"

finish test-hostile.sh
