#!/usr/bin/env bash
# test-hook.sh: proves `runnerlock hook` with real processes, kill -9 and
# the Stop-hook fixtures: the hook returns while the run goes on, busy and
# stuck skips, the hand-off surviving the hook's process group, reclaim
# after a dead supervisor, bad input, --once, nested hooks and the input
# deadline. Each check prints "ok - ..." or "FAIL - ..."; the script exits
# non-zero when any check fails.
#
#   RUNNERLOCK_BIN       the binary to test (default: built here with go build)
#   RUNNERLOCK_FIXTURES  the Stop-hook fixtures (default ../shared/fixtures/stop-hook)
#
# It uses a lock path and a state directory of its own, in a temporary
# folder that it removes, with every process it started, on exit.
set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${RUNNERLOCK_FIXTURES:-$repo/../shared/fixtures/stop-hook}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runnerlock-hook-test.XXXXXX")
bin=${RUNNERLOCK_BIN:-$tmp/runnerlock}
lock=$tmp/lock
state=$tmp/state/runnerlock
events=$state/events.log
runner=$state/runner.log
started=() # supervisors we know of, ended on exit

cleanup() {
	exec 7>&- 8>&- 2>/dev/null
	local p
	# What still holds our lock, and supervisors of ours still running (a
	# pid is only trusted while its command line names our folder).
	for p in $(holders) ${started[@]+"${started[@]}"}; do
		if grep -qF "$tmp" "/proc/$p/cmdline" 2>/dev/null || [ -n "$(holders | grep -w "$p")" ]; then
			kill -9 "$p" 2>/dev/null
		fi
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

export XDG_STATE_HOME=$tmp/state RUNNERLOCK_LOCK=$lock
unset RUNNERLOCK_LOG RUNNERLOCK_RUN RUNNERLOCK_SESSION RUNNERLOCK_FENCE

# ok, fail, now_ms, finish
. "$repo/scripts/testlib.sh"
# check_sh DESCRIPTION CONDITION: CONDITION is shell code, run with eval.
check_sh() {
	if eval "$2"; then ok "$1"; else fail "$1"; fi
}

# jget KEY: a top-level field of the JSON object on stdin; a list prints as
# its elements separated by spaces, a missing field as nothing.
if command -v jq >/dev/null 2>&1; then
	jget() {
		jq -r --arg k "$1" '.[$k] // empty | if type == "array" then map(tostring) | join(" ")
			else . end'
	}
	jvalid() { jq -e 'type == "object" and (.systemMessage | type == "string")' >/dev/null; }
elif command -v python3 >/dev/null 2>&1; then
	jget() {
		python3 -c 'import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
print("" if v is None else " ".join(map(str, v)) if isinstance(v, list) else v)' "$1"
	}
	jvalid() {
		python3 -c 'import json, sys; assert isinstance(json.load(sys.stdin)["systemMessage"], str)'
	}
else
	echo "FAIL - test-hook.sh needs jq or python3"
	exit 1
fi

status_get() { "$bin" status --lock "$lock" --json 2>/dev/null | jget "$1"; }
holders() { [ -x "$bin" ] && status_get holders; }

# fire INPUT [HOOK ARGS...]: runs the hook on INPUT in a session of its own
# (setsid), as an agent would in a process group of its own, and sets rc,
# ms, out, err and pgid (the hook's process group, which is its pid).
hook_env=()
fire() {
	local input=$1 t0
	shift
	t0=$(now_ms)
	env ${hook_env[@]+"${hook_env[@]}"} setsid -w sh -c 'echo $$ >"$0"; exec "$@"' \
		"$tmp/pgid" "$bin" hook "$@" <"$input" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	ms=$(($(now_ms) - t0))
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
	pgid=$(cat "$tmp/pgid")
}

# wait_log PATTERN [SECONDS]: waits until the event log has a line matching
# the extended regular expression PATTERN.
wait_log() {
	local deadline=$(($(now_ms) + ${2:-5} * 1000))
	while [ "$(now_ms)" -lt "$deadline" ]; do
		grep -Eq -- "$1" "$events" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
# wait_free [SECONDS]: waits until status says the lock is free.
wait_free() {
	local deadline=$(($(now_ms) + ${1:-5} * 1000))
	while [ "$(now_ms)" -lt "$deadline" ]; do
		[ "$(status_get state)" = free ] && return 0
		sleep 0.02
	done
	return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
gone() { # gone PID...: no such process, or only a zombie its parent has yet to reap
	local p st
	for p; do
		st=$(sed 's/.*) \(.\).*/\1/' "/proc/$p/stat" 2>/dev/null)
		[ -z "$st" ] || [ "$st" = Z ] || return 1
	done
}
count() { grep -Ec -- "$1" "$events" 2>/dev/null; }
json_file() { # json_file PATH SESSION: a minimal Stop event
	printf '{"session_id":"%s","hook_event_name":"Stop","stop_hook_active":false}\n' "$2" >"$1"
}

if [ ! -d "$fixtures" ]; then
	echo "FAIL - no fixtures at $fixtures"
	exit 1
fi
if [ -z "${RUNNERLOCK_BIN:-}" ]; then
	if ! bash "$repo/scripts/build.sh" "$tmp/runnerlock"; then
		echo "FAIL - go build"
		exit 1
	fi
fi
"$bin" --version >/dev/null # page the binary in: the figures are the hook's, not the disk's
sid_current=3f1c9e2a-7b44-4c1e-9a0d-5e2f8b6c1d70 # stop-current.json
sid_minimal=a81f0c55-2d3e-4b6a-9c1d-77e0f4b2a913 # stop-minimal.json
sid_active=c0ffee00-1111-4222-8333-944455556666  # stop-hook-active.json

# --- the hook returns while a 3 s run holds the lock ----------------------
fire "$fixtures/stop-current.json" -- \
	sh -c 'cat >"$0"; echo "$RUNNERLOCK_SESSION" >"$1"; echo run-output; sleep 3' \
	"$tmp/got.json" "$tmp/got.session"
echo "# hook return latency: ${ms} ms (the run goes on for 3 s)"
check_sh "the hook started the run and exited 0 (rc=$rc)" '[ "$rc" -eq 0 ]'
check_sh "the hook returned in ${ms} ms while the 3 s run holds the lock (bound 1000 ms)" \
	'[ "$ms" -lt 1000 ]'
check_sh "the hook printed nothing on stdout or stderr" '[ -z "$out$err" ]'
sup=$(status_get pid)
run1=$(status_get run)
started+=("$sup")
check_sh "status --json names a supervisor as holder (pid ${sup:-none})" '[ -n "$sup" ]'
check_sh "the supervisor is not the hook (hook $pgid, supervisor $sup)" '[ "$sup" != "$pgid" ]'
check_sh "the supervisor leads a session of its own" \
	'[ "$(ps -o sid= -p "$sup" | tr -d " ")" = "$sup" ]'
check_sh "the supervisor's stdin is /dev/null" '[ "$(readlink "/proc/$sup/fd/0")" = /dev/null ]'
check_sh "the supervisor's stdout is the runner log" \
	'[ "$(readlink "/proc/$sup/fd/1")" = "$runner" ]'

left=$(ps -e -o pgid= | grep -c "^ *$pgid\$")
kill -9 -- "-$pgid" 2>/dev/null
sleep 0.2
check_sh "kill -9 of the hook's process group ($left processes left in it) leaves the run going" \
	'alive "$sup"'
check_sh "status still names the supervisor as holder, though the hook that called flock exited" \
	'[ "$(status_get pid)" = "$sup" ] && [ "$(status_get state)" = held ]'

# --- a second hook meanwhile: a busy skip --------------------------------
fire "$fixtures/stop-minimal.json" --skipped-log "$tmp/skipped.log" -- touch "$tmp/never"
check_sh "a second hook exits 0 in ${ms} ms while the lock is busy" \
	'[ "$rc" -eq 0 ] && [ "$ms" -lt 1000 ]'
check_sh "its stdout is empty (the holder is not stuck)" '[ -z "$out" ]'
busy="skip session=\"$sid_minimal\" reason=\"runner-busy\" holder_pid=$sup "
check_sh "it logged skip with its own session and runner-busy" 'wait_log "$busy" 1'
check_sh "the skip is in the --skipped-log too" 'grep -q "$busy" "$tmp/skipped.log"'

# --- the run ends; the job got the input byte for byte -------------------
check_sh "the run ended with done" 'wait_log "done run=\"$run1\"" 6'
check_sh "the job received the hook's JSON unchanged (cmp)" \
	'cmp -s "$tmp/got.json" "$fixtures/stop-current.json"'
check_sh "the job's RUNNERLOCK_SESSION is the input's session_id" \
	'[ "$(cat "$tmp/got.session")" = "$sid_current" ]'
check_sh "the skipped hooks started nothing" '[ ! -e "$tmp/never" ]'
check_sh "the run's output went to the runner log, not the event log" \
	'grep -qx run-output "$runner" && ! grep -qx run-output "$events" &&
	! grep -Evq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z [a-z_]+( |\$)" "$events"'
check_sh "the logs default to the state directory, mode 0600" \
	'[ "$(stat -c %a "$events")" = 600 ] && [ "$(stat -c %a "$runner")" = 600 ]'

# --- a long run: stale RUNNERLOCK_RUN, stuck, then kill -9 and reclaim ----
fire "$fixtures/stop-current.json" -- sleep 30
sup=$(status_get pid)
run2=$(status_get run)
started+=("$sup")

# While this run holds the lock (it ends only when killed below):
hook_env=(RUNNERLOCK_RUN=0123456789abcdef)
fire "$fixtures/stop-minimal.json" -- touch "$tmp/never"
hook_env=()
check_sh "a stale RUNNERLOCK_RUN on a busy lock gets a runner-busy skip, not nested" \
	'[ "$(count "skip session=\"$sid_minimal\" reason=\"runner-busy\" holder_pid=$sup ")" -eq 1 ]'

# a stuck holder: a warning, and a systemMessage for the agent
fire "$fixtures/stop-hook-active.json" --stuck-after 1ms -- touch "$tmp/never"
check_sh "a hook finding a stuck holder exits 0" '[ "$rc" -eq 0 ]'
check_sh "its stdout decodes as one JSON object with a systemMessage" 'jvalid <<<"$out"'
check_sh "the systemMessage names the holder's pid" 'grep -q "pid $sup " <<<"$out"'
check_sh "the skip is a warning with stuck=true" \
	'wait_log "skip level=\"warn\" session=\"$sid_active\" reason=\"runner-busy\".* stuck=true" 1'
check_sh "the skipped hooks started nothing, and none was taken for nested" \
	'[ ! -e "$tmp/never" ] && [ "$(count "reason=\"nested\"")" -eq 0 ]'

t0=$(now_ms)
kill -9 "$sup"
wait_free 2
freed=$(($(now_ms) - t0))
check_sh "kill -9 of the detached supervisor frees the lock at once (${freed} ms)" \
	'[ "$freed" -lt 1000 ]'
fire "$fixtures/stop-minimal.json" -- true
check_sh "the next hook starts a run (rc=$rc, ${ms} ms)" '[ "$rc" -eq 0 ]'
check_sh "and logs reclaim for the dead run" \
	'wait_log "reclaim level=\"warn\" .*dead_run=\"$run2\"" 2'

# --- a grandchild keeps the lock after its supervisor died ---------------
wait_free 3
fire "$fixtures/stop-current.json" -- sh -c 'sleep 300 & wait'
sup=$(status_get pid)
run3=$(status_get run)
started+=("$sup")
kill -9 "$sup"
sleep 0.3
left=$(holders | tr " " ,)
check_sh "the grandchild ($left) still holds the lock, with no live supervisor" \
	'[ -n "$left" ] && [ -z "$(status_get pid)" ]'
fire "$fixtures/stop-minimal.json" --grace 2s -- sh -c 'echo reclaimed; sleep 0.2'
check_sh "a new hook returns at once although the lock needs reclaiming (rc=$rc, ${ms} ms)" \
	'[ "$rc" -eq 0 ] && [ "$ms" -lt 1000 ]'
check_sh "its supervisor ends the leftovers and logs reclaim" \
	'wait_log "reclaim level=\"warn\" .*dead_run=\"$run3\".* ended=\"$left\"" 5'
check_sh "then the new run starts" \
	'wait_log "start run=.* session=\"$sid_minimal\".*reclaimed" 3'
check_sh "the grandchild is gone" 'gone ${left//,/ }'
wait_free 3

# --- leftovers that cannot be reclaimed: the agent is told once stuck ----
fire "$fixtures/stop-current.json" -- sh -c 'env -u RUNNERLOCK_RUN sleep 30 & wait'
sup=$(status_get pid)
started+=("$sup")
kill -9 "$sup"
sleep 0.3
untied=$(holders)
fire "$fixtures/stop-minimal.json" --stuck-after 1ms --grace 1s -- touch "$tmp/never"
check_sh "a hook on a lock kept by untied leftovers ($untied) returns at once (rc=$rc, ${ms} ms)" \
	'[ "$rc" -eq 0 ] && [ "$ms" -lt 1000 ]'
check_sh "and, past --stuck-after, prints one systemMessage that says the supervisor died" \
	'jvalid <<<"$out" && grep -q "lost its supervisor" <<<"$out"'
for p in $untied; do kill -9 "$p" 2>/dev/null; done
wait_free 3

# --- bad input: exit 1, one line, nothing started ------------------------
{
	printf '{"session_id":"big","pad":"'
	head -c $((1024 * 1024 + 10)) /dev/zero | tr '\0' a
	printf '"}\n'
} >"$tmp/over-cap.json"
for f in "$fixtures"/bad/* "$tmp/over-cap.json"; do
	n=$(count 'start run=')
	fire "$f" -- touch "$tmp/bad-started"
	sleep 0.05
	lines=$(wc -l <"$tmp/err")
	check_sh "bad input $(basename "$f"): exit 1, one line ($(cut -c1-72 "$tmp/err")), nothing started" \
		'[ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && [ -z "$out" ] &&
		grep -q "^runnerlock: error: bad hook input" "$tmp/err" &&
		[ ! -e "$tmp/bad-started" ] && [ "$(count "start run=")" -eq "$n" ]'
done
check_sh "bad input is logged as error reason=bad-hook-input" \
	'[ "$(count "error level=\"error\" reason=\"bad-hook-input\"")" -ge 8 ]'

# --- --once ---------------------------------------------------------------
json_file "$tmp/once.json" once-1
fire "$tmp/once.json" --once -- true
check_sh "--once: the first run of a session starts and ends with done" \
	'[ "$rc" -eq 0 ] && wait_log "done run=.* session=\"once-1\"" 3'
wait_free 2
mark=$(printf %s once-1 | sha256sum | cut -c1-64)
check_sh "--once: the done mark is named by the session's SHA-256" '[ -f "$state/done/$mark" ]'
fire "$tmp/once.json" --once -- touch "$tmp/never"
check_sh "--once: the next hook of that session skips with already-done" \
	'[ "$rc" -eq 0 ] && wait_log "skip session=\"once-1\" reason=\"already-done\"" 1'
json_file "$tmp/once2.json" once-2
fire "$tmp/once2.json" --once -- true
check_sh "--once: another session still runs" 'wait_log "done run=.* session=\"once-2\"" 3'
wait_free 2

listing() { find "$tmp" -path "$state/done" -prune -o -print | sort; }
listing >"$tmp/before"
i=0
for id in '../x' 'a/b/../../c' '/etc/runnerlock-test-x' '..'; do
	i=$((i + 1))
	re=$(sed 's/[.]/[.]/g' <<<"$id")
	json_file "$tmp/hostile$i.json" "$id"
	fire "$tmp/hostile$i.json" --once -- true
	wait_log "done run=.* session=\"$re\"" 3
	wait_free 2
	fire "$tmp/hostile$i.json" --once -- touch "$tmp/never"
	check_sh "--once resists the session id '$id': one run, then already-done" \
		'wait_log "skip session=\"$re\" reason=\"already-done\"" 1'
done
printf '{"session_id":"%s"}\n' "$(head -c 102400 /dev/zero | tr '\0' s)" >"$tmp/huge-id.json"
fire "$tmp/huge-id.json" --once -- touch "$tmp/never"
check_sh "--once: a 100 KB session id is bad input (rc=$rc): ${err:0:90}" '[ "$rc" -eq 1 ]'
listing >"$tmp/after"
new=$(comm -13 "$tmp/before" "$tmp/after" |
	grep -Ev "^$tmp/(hostile[0-9]\.json|huge-id\.json|after)\$")
check_sh "--once: no file appeared outside the marks' folder${new:+: $new}" '[ -z "$new" ]'
check_sh "--once: every mark is named by 64 hex digits" \
	'! ls -A "$state/done" | grep -Evq "^[0-9a-f]{64}\$"'
check_sh "--once: nothing was written at ../x or under /etc" \
	'[ ! -e "$state/x" ] && [ ! -e "$tmp/state/x" ] && [ ! -e /etc/runnerlock-test-x ]'
check_sh "--once: the skipped sessions started nothing" '[ ! -e "$tmp/never" ]'

# --- nested hooks ---------------------------------------------------------
json_file "$tmp/inner.json" nested-inner
json_file "$tmp/outer.json" nested-outer
fire "$tmp/outer.json" -- \
	sh -c '"$0" hook -- touch "$1.started" <"$1"; echo $? >"$2"; sleep 0.5' \
	"$bin" "$tmp/inner.json" "$tmp/nested.rc"
wait_log 'done run=.* session="nested-outer"' 3
check_sh "a hook run from inside a job exits 0" '[ "$(cat "$tmp/nested.rc" 2>/dev/null)" = 0 ]'
check_sh "and skips as nested" 'grep -q "skip session=\"nested-inner\" reason=\"nested\"" "$events"'
check_sh "and starts nothing" '[ ! -e "$tmp/inner.json.started" ]'
wait_free 2
json_file "$tmp/stale.json" stale-1
hook_env=(RUNNERLOCK_RUN=0123456789abcdef)
fire "$tmp/stale.json" -- true
hook_env=()
check_sh "a hook with a stale RUNNERLOCK_RUN is not silenced: its run starts" \
	'[ "$rc" -eq 0 ] && wait_log "start run=.* session=\"stale-1\"" 2'
check_sh "and it logs no skip" '! grep -q "skip session=\"stale-1\"" "$events"'
wait_free 2

# --- the input deadline ---------------------------------------------------
mkfifo "$tmp/open.fifo" "$tmp/object.fifo"
exec 7<>"$tmp/open.fifo" 8<>"$tmp/object.fifo" # held open: no end of input, ever
printf '{"session_id":"no-eof"}\n' >&8
fire "$tmp/object.fifo" -- true
check_sh "a complete object is enough, without the end of input (${ms} ms)" \
	'[ "$rc" -eq 0 ] && [ "$ms" -lt 1000 ]'
fire "$tmp/open.fifo" -- touch "$tmp/deadline-started"
check_sh "a hook whose stdin is never closed gives up within the deadline (${ms} ms, bound 7000)" \
	'[ "$rc" -eq 1 ] && [ "$ms" -lt 7000 ] && [ ! -e "$tmp/deadline-started" ]'
check_sh "and says so in one line: $err" \
	'[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "within 5s" "$tmp/err"'
exec 7>&- 8>&-
wait_free 2

finish test-hook.sh
