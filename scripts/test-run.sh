#!/usr/bin/env bash
# test-run.sh: end-to-end checks of `runnerlock run` and `runnerlock status`
# with real processes, real signals and real files (issues 2 and 3, G1-G5 of
# DESIGN.md).
#
# Every check prints `ok - WHAT` or `FAIL - WHAT: WHY` (or `skip - WHAT: WHY`
# when a tool it needs is missing); the script exits non-zero when any check
# failed. Each check has its own lock file and event log under one
# `mktemp -d` directory. Where time matters the check asserts a generous
# bound and prints the figure it measured.
#
# Usage: RUNNERLOCK_BIN=/path/to/runnerlock scripts/test-run.sh
#        (without RUNNERLOCK_BIN the binary is built into the temp dir)
set -u -o pipefail

# ---------------------------------------------------------------------------
# Set-up and clean-up

T=$(mktemp -d "${TMPDIR:-/tmp}/runnerlock-test-run.XXXXXX")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Every process this script starts inherits the token, so that clean-up can
# find what a test left behind even when it never learnt its pid (a
# grandchild of a killed run, say).
RL_ITEST_TOKEN="test-run.$$.$RANDOM$RANDOM"
export RL_ITEST_TOKEN

# The caller's own runnerlock settings must not leak into the tests.
unset RUNNERLOCK_LOCK RUNNERLOCK_LOG RUNNERLOCK_SESSION RUNNERLOCK_RUN \
	RUNNERLOCK_FENCE RUNNERLOCK_CLEAN_START

PIDS=()
WATCHDOG=
track() { PIDS+=("$@"); }

cleanup() {
	local p e pid
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
	for p in "${PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	# Anything else that carries our token: leftovers of killed runs.
	for e in $(grep -lzxF "RL_ITEST_TOKEN=$RL_ITEST_TOKEN" /proc/[0-9]*/environ 2>/dev/null); do
		pid=${e#/proc/}
		pid=${pid%/environ}
		[ "$pid" = "$$" ] && continue
		kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "FAIL - test-run.sh: interrupted"; exit 130' INT TERM HUP

cd "$T" || exit 1

if [ -z "${RUNNERLOCK_BIN:-}" ]; then
	echo "# RUNNERLOCK_BIN not set: building into $T"
	bash "$ROOT/scripts/build.sh" "$T/runnerlock" || {
		echo "FAIL - build: go build failed"
		exit 1
	}
	RUNNERLOCK_BIN=$T/runnerlock
fi
B=$RUNNERLOCK_BIN
if [ ! -x "$B" ]; then
	echo "FAIL - binary: $B is not executable"
	exit 1
fi

PY=$(command -v python3 || true)
if [ -n "$PY" ]; then
	PY=$("$PY" -c 'import sys; print(sys.executable)') # skip pyenv shims
fi

# ok, fail WHAT WHY, skip, check WHAT WHY CMD..., now_ms, finish
. "$ROOT/scripts/testlib.sh"

# A global watchdog: the whole script must end well within this.
(
	sleep 300
	echo "FAIL - test-run.sh: watchdog: still running after 300 s"
	kill -TERM $$
) &
WATCHDOG=$!

# newcase NAME: a directory of its own, with lock path L and event log LOG.
newcase() {
	D=$T/$1
	mkdir -p "$D"
	L=$D/lock
	LOG=$D/events.log
}

# alive PID: the process exists and is not a zombie.
alive() {
	local line st
	read -r line 2>/dev/null <"/proc/$1/stat" || return 1
	st=${line##*) }
	st=${st%% *}
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_for TIMEOUT_MS CMD...: poll CMD every 20 ms until it succeeds.
wait_for() {
	local limit=$1 t0
	shift
	t0=$(now_ms)
	until "$@"; do
		if [ $(($(now_ms) - t0)) -ge "$limit" ]; then
			return 1
		fi
		sleep 0.02
	done
}

dead() { ! alive "$1"; }
exists() { [ -e "$1" ]; }

status_json() { "$B" status --lock "$1" --json 2>/dev/null; }

# held_by LOCK PID: status says held, with PID as the live supervisor.
held_by() {
	local j
	j=$(status_json "$1") || return 1
	[[ $j == *'"state":"held"'* && $j == *"\"pid\":$2,"* ]]
}
is_held() {
	local j
	j=$(status_json "$1") || return 1
	[[ $j == *'"state":"held"'* ]]
}
is_free() {
	local j
	j=$(status_json "$1") || return 1
	[[ $j == *'"state":"free"'* ]]
}

# kernel_entries LOCK: lines of /proc/locks for the lock file's inode
# (a blocked waiter's line has "->").
kernel_entries() {
	local id
	id=$(stat -c '%d %i' "$1" 2>/dev/null) || return 0
	set -- $id
	awk -v dev="$1" -v ino="$2" '
		BEGIN { want = sprintf("%02x:%02x:%d", int(dev / 256) % 4096, dev % 256 + int(dev / 1048576) * 256, ino) }
		{ for (i = 1; i <= NF; i++) if ($i == want) print }' /proc/locks
}
has_blocked_waiter() { kernel_entries "$1" | grep -q -- '->'; }
kernel_free() { [ -z "$(kernel_entries "$1")" ]; }

# count_events LOG EVENT [EXTRA-ERE]: lines of event EVENT (with EXTRA).
count_events() {
	local n
	if [ -n "${3:-}" ]; then
		n=$(grep -E "^[^ ]+ $2( |\$)" "$1" 2>/dev/null | grep -cE -- "$3")
	else
		n=$(grep -cE "^[^ ]+ $2( |\$)" "$1" 2>/dev/null)
	fi
	echo "${n:-0}"
}

# field LOG EVENT KEY: the value of KEY in the last EVENT line (unquoted).
field() {
	grep -E "^[^ ]+ $2( |\$)" "$1" 2>/dev/null | tail -n 1 |
		sed -nE "s/.* $3=(\"([^\"]*)\"|([^ ]*)).*/\2\3/p"
}

# children_of PID: pids whose parent is PID.
children_of() {
	local s line f
	for s in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$s" || continue
		read -r -a f <<<"${line##*) }"
		if [ "${f[1]:-}" = "$1" ]; then
			line=${s#/proc/}
			echo "${line%/stat}"
		fi
	done
}

# pgroup_alive PGID: any live process in process group PGID.
pgroup_alive() {
	local s line f
	for s in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$s" || continue
		read -r -a f <<<"${line##*) }"
		if [ "${f[2]:-}" = "$1" ] && [ "${f[0]}" != Z ] && [ "${f[0]}" != X ]; then
			return 0
		fi
	done
	return 1
}

# run_procs RUN: live pids whose environment carries RUNNERLOCK_RUN=RUN,
# that is, processes of that run.
run_procs() {
	local e pid
	[ -n "$1" ] || return 0
	for e in $(grep -lzxF "RUNNERLOCK_RUN=$1" /proc/[0-9]*/environ 2>/dev/null); do
		pid=${e#/proc/}
		pid=${pid%/environ}
		alive "$pid" && echo "$pid"
	done
}
no_run_procs() { [ -z "$(run_procs "$1")" ]; }

# A checker of the event log: every start has exactly one terminal record
# (done, post_error, killed, timeout; or, for a run that died without one,
# one reclaim naming it as dead_run), every run event carries run=, and no
# line is torn. It prints a summary or the problems.
cat >"$T/terminals.py" <<'EOF'
import re, sys
pair = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')
TERMINAL = {"done", "post_error", "killed", "timeout"}
starts, terms, reclaims, bad = {}, {}, {}, []
stamp = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$')
for path in sys.argv[1:]:
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    except FileNotFoundError:
        continue
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        bad.append(f"{path}: last line has no newline")
    for n, line in enumerate(lines, 1):
        parts = line.split(" ", 2)
        if len(parts) < 2 or not stamp.match(parts[0]):
            bad.append(f"{path}:{n}: not an event line: {line[:80]!r}")
            continue
        ev, kv = parts[1], {}
        for m in pair.finditer(parts[2] if len(parts) > 2 else ""):
            v = m.group(2)
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            kv[m.group(1)] = v
        run = kv.get("run", "")
        if ev == "start" or ev in TERMINAL or ev == "reclaim":
            if not run:
                bad.append(f"{path}:{n}: {ev} without run=")
                continue
        if ev == "start":
            starts[run] = starts.get(run, 0) + 1
        elif ev in TERMINAL:
            terms[run] = terms.get(run, 0) + 1
        elif ev == "reclaim" and kv.get("dead_run"):
            reclaims[kv["dead_run"]] = reclaims.get(kv["dead_run"], 0) + 1
for run, c in starts.items():
    t, r = terms.get(run, 0), reclaims.get(run, 0)
    if c != 1:
        bad.append(f"run {run}: {c} start events")
    if t > 1:
        bad.append(f"run {run}: {t} terminal events")
    elif t == 0 and r != 1:
        bad.append(f"run {run}: no terminal event and {r} reclaim events")
    if r > 1:
        bad.append(f"run {run}: reclaimed {r} times")
for run in terms:
    if run not in starts:
        bad.append(f"run {run}: terminal event without a start")
if bad:
    print("; ".join(bad[:4]) + (f" (and {len(bad) - 4} more)" if len(bad) > 4 else ""))
    sys.exit(1)
print(f"{len(starts)} starts, {sum(terms.values())} terminal events, "
      f"{sum(reclaims.values())} reclaims")
EOF

# terminals WHAT LOG...: the check above, as one ok/FAIL line.
terminals() {
	local what=$1 out
	shift
	if [ -z "$PY" ]; then
		skip "$what" "python3 is missing"
		return
	fi
	if out=$("$PY" "$T/terminals.py" "$@" 2>&1); then
		ok "$what ($out)"
	else
		fail "$what" "$out"
	fi
}

# start_holder CMD...: runnerlock run -- CMD in the background on $L/$LOG;
# sets HOLDER; waits until status names it as the supervisor.
start_holder() {
	"$B" run --lock "$L" --log "$LOG" "${HOLDER_FLAGS[@]}" -- "$@" &
	HOLDER=$!
	track "$HOLDER"
	# Killed holders are reaped by bash without a job notice; tests poll
	# /proc instead of waiting for them.
	disown "$HOLDER" 2>/dev/null
	if ! wait_for 10000 held_by "$L" "$HOLDER"; then
		echo "# holder $HOLDER never showed as held: $(status_json "$L")"
		return 1
	fi
}
HOLDER_FLAGS=()

# stop PID: TERM it and reap it, KILL after 5 s.
stop() {
	kill -TERM "$1" 2>/dev/null
	if ! wait_for 5000 dead "$1"; then kill -9 "$1" 2>/dev/null; fi
	wait "$1" 2>/dev/null
}

BOOT_ID=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
PIDNS=$(readlink /proc/self/ns/pid 2>/dev/null)

# ---------------------------------------------------------------------------
# The checks

t_kill9_holder() {
	newcase kill9-holder
	HOLDER_FLAGS=(--session k9-s)
	start_holder sleep 300 || {
		HOLDER_FLAGS=()
		fail "kill -9 of a holder" "the holder never took the lock"
		return
	}
	HOLDER_FLAGS=()
	local sup=$HOLDER sl t0 t1 rc run fence
	sl=$(field "$LOG" start cmd_pid)
	run=$(field "$LOG" start run)
	fence=$(field "$LOG" start fence)
	t0=$(now_ms)
	kill -9 "$sup"
	wait_for 2000 dead "$sup"
	if wait_for 2000 dead "$sl"; then
		t1=$(now_ms)
		ok "kill -9 of the holder: its command (sleep $sl) died by the parent-death signal $((t1 - t0)) ms after the kill (bound 2000 ms)"
	else
		fail "kill -9 of the holder: command killed" "sleep $sl still alive 2 s after kill -9 of its supervisor"
	fi
	t0=$(now_ms)
	"$B" run -n --lock "$L" --log "$LOG" -- true
	rc=$?
	t1=$(now_ms)
	if [ $rc -eq 0 ] && [ $((t1 - t0)) -le 1000 ]; then
		ok "kill -9 of the holder: a fresh run -n took the lock and finished in $((t1 - t0)) ms (bound 1000 ms)"
	else
		fail "kill -9 of the holder: a fresh run succeeds at once" "exit $rc after $((t1 - t0)) ms"
	fi
	check "kill -9 of the holder: the next run logs reclaim dead_pid=$sup" \
		"no such reclaim in the log: $(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim "dead_pid=$sup( |\$)")" -eq 1
	check "kill -9 of the holder: reclaim gives the dead run's id, session, start time and fence" \
		"$(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim "dead_run=\"$run\".*dead_session=\"k9-s\".*dead_since=\"?[0-9]{4}-.*dead_fence=$fence( |\$)")" -eq 1
	terminals "kill -9 of the holder: every start has one terminal record" "$LOG"
}

t_kill9_waiter() {
	newcase kill9-waiter
	start_holder sleep 300 || {
		fail "kill -9 with a waiter" "the holder never took the lock"
		return
	}
	local sup=$HOLDER sl w t0 ts rc
	sl=$(field "$LOG" start cmd_pid)
	"$B" run -w 10s --lock "$L" --log "$LOG" -- sh -c 'date +%s%N >"$1.tmp"; mv "$1.tmp" "$1"; exec sleep 300' sh "$D/started" &
	w=$!
	track "$w"
	disown "$w" 2>/dev/null # it is killed below: no job notice
	if ! wait_for 10000 has_blocked_waiter "$L"; then
		fail "kill -9 with a waiter" "the waiter never blocked in flock"
		return
	fi
	t0=$(now_ms)
	kill -9 "$sup"
	wait_for 2000 dead "$sup"
	wait_for 10000 exists "$D/started"
	rc=$?
	if [ $rc -eq 0 ] && [ -s "$D/started" ]; then
		ts=$(($(cat "$D/started") / 1000000))
		if [ $((ts - t0)) -le 1000 ]; then
			ok "kill -9 of runnerlock: the blocked -w 10s waiter's command started $((ts - t0)) ms after the kill (bound 1000 ms)"
		else
			fail "kill -9 of runnerlock: the waiter starts at once" "it started $((ts - t0)) ms after the kill (bound 1000 ms)"
		fi
	else
		fail "kill -9 of runnerlock: the waiter runs" "waiter exit $rc, command started: $(cat "$D/started" 2>/dev/null)"
	fi
	check "kill -9 of runnerlock leaves no process of the run alive (sleep $sl gone)" \
		"sleep $sl is still alive" dead "$sl"
	# The waiter got the lock after sleeping in flock: its command must die
	# with it too (the parent-death signal follows the thread that started
	# the command).
	local wsl wrun
	wait_for 5000 held_by "$L" "$w"
	wsl=$(field "$LOG" start cmd_pid)
	wrun=$(field "$LOG" start run)
	t0=$(now_ms)
	kill -9 "$w"
	wait_for 2000 dead "$w"
	if wait_for 2000 dead "$wsl" && wait_for 2000 no_run_procs "$wrun"; then
		ok "kill -9 of a runnerlock that waited for the lock: its command (sleep $wsl) died $(($(now_ms) - t0)) ms after (bound 2000 ms)"
	else
		fail "kill -9 of a runnerlock that waited: command killed" "sleep $wsl alive; processes of run $wrun: $(run_procs "$wrun")"
	fi
	"$B" run -n --lock "$L" --log "$LOG" -- true
	rc=$?
	check "after that a fresh run -n goes ahead and logs reclaim dead_pid=$w" \
		"exit $rc; $(grep reclaim "$LOG" | tail -n 1)" \
		eval "[ $rc -eq 0 ] && [ \"\$(count_events '$LOG' reclaim 'dead_pid=$w( |\$)')\" -eq 1 ]"
	check "kill -9 of runnerlock: the waiter logs reclaim dead_pid=$sup" \
		"no such reclaim: $(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim "dead_pid=$sup( |\$)")" -eq 1
	terminals "kill -9 with a waiter: every start has one terminal record" "$LOG"
}

CRIT='mkdir "$1/inside" 2>/dev/null || echo OVERLAP >>"$1/overlaps"; sleep 0.05; rmdir "$1/inside" 2>/dev/null; exit 0'

t_exclusion() {
	newcase exclusion
	local i pids=() t0 t1 n
	t0=$(now_ms)
	for i in 1 2 3 4 5 6 7 8; do
		(
			for r in 1 2 3 4; do
				"$B" run -w 60s --lock "$L" --log "$LOG" -- sh -c "$CRIT" sh "$D" ||
					echo "loop $i round $r: exit $?" >>"$D/errors"
			done
		) &
		pids+=($!)
	done
	track "${pids[@]}"
	wait "${pids[@]}"
	t1=$(now_ms)
	n=$(count_events "$LOG" start)
	if [ ! -e "$D/overlaps" ] && [ ! -e "$D/errors" ] && [ "$n" -eq 32 ]; then
		ok "eight -w 60s waiters x 4 rounds: never two inside the critical section (32 runs in $((t1 - t0)) ms)"
	else
		fail "eight concurrent waiters are never two inside" \
			"$(wc -l <"$D/overlaps" 2>/dev/null || echo 0) overlaps, errors: $(cat "$D/errors" 2>/dev/null | tr '\n' ';'), $n starts"
	fi
	terminals "eight waiters: every start has one terminal record" "$LOG"
	check "eight waiters: no reclaim and no killed events" \
		"$(grep -E ' (reclaim|killed) ' "$LOG" | head -n 2)" \
		test "$(($(count_events "$LOG" reclaim) + $(count_events "$LOG" killed)))" -eq 0

	# Negative control: the same section on eight separate lock paths must
	# overlap, or the detector proves nothing.
	newcase exclusion-control
	pids=()
	for i in 1 2 3 4 5 6 7 8; do
		(
			for r in 1 2; do
				"$B" run -w 60s --lock "$D/lock.$i" --log "$LOG" -- sh -c "$CRIT" sh "$D"
			done
		) &
		pids+=($!)
	done
	track "${pids[@]}"
	wait "${pids[@]}"
	n=$(wc -l <"$D/overlaps" 2>/dev/null || echo 0)
	check "negative control: the same section on 8 separate lock paths overlaps ($n overlaps seen)" \
		"no overlap seen: the detector cannot detect" test "$n" -gt 0
}

t_busy() {
	newcase busy
	local rc err
	"$B" run -n -w 1s --lock "$L" -- true 2>"$D/err"
	rc=$?
	check "-n and -w together: exit 64" "exit $rc" test $rc -eq 64
	HOLDER_FLAGS=(--session holder-s)
	start_holder sleep 300 || {
		HOLDER_FLAGS=()
		fail "busy" "the holder never took the lock"
		return
	}
	HOLDER_FLAGS=()
	"$B" run --lock "$L" --log "$LOG" --session busy-s -- touch "$D/ran"
	rc=$?
	check "busy lock: exit 75" "exit $rc" test $rc -eq 75
	check "busy lock: the command did not run" "it ran" test ! -e "$D/ran"
	check "busy lock: skip event with reason=\"runner-busy\" holder_pid=$HOLDER" \
		"log: $(grep skip "$LOG")" \
		test "$(count_events "$LOG" skip "reason=\"runner-busy\".*holder_pid=$HOLDER( |\$)")" -eq 1
	"$B" run -n -E 9 --lock "$L" --log "$LOG" -- touch "$D/ran"
	rc=$?
	check "busy lock with -E 9: exit 9" "exit $rc" test $rc -eq 9
	"$B" run -n -E 256 --lock "$L" --log "$LOG" -- touch "$D/ran" 2>/dev/null
	rc=$?
	check "-E 256 is a usage error: exit 64" "exit $rc" test $rc -eq 64
	stop "$HOLDER"
}

t_exit_statuses() {
	newcase exit-statuses
	local rc n
	"$B" run --lock "$L" --log "$LOG" -- sh -c 'exit 3'
	rc=$?
	check "exit 3 passes through" "exit $rc" test $rc -eq 3
	check "exit 3: post_error event with exit=3" "$(tail -n 1 "$LOG")" \
		test "$(count_events "$LOG" post_error 'exit=3( |$)')" -eq 1
	"$B" run --lock "$L" --log "$LOG" -- sh -c 'kill -TERM $$'
	rc=$?
	check "a command killed by TERM gives 143" "exit $rc" test $rc -eq 143
	check "killed by TERM: killed event with signal=\"SIGTERM\"" "$(tail -n 1 "$LOG")" \
		test "$(count_events "$LOG" killed 'signal="SIGTERM"')" -eq 1
	"$B" run --lock "$L" --log "$LOG" -- "$D/no-such-command" 2>"$D/err"
	rc=$?
	check "command not found: exit 127" "exit $rc" test $rc -eq 127
	"$B" run --lock "$L" --log "$LOG" -- no-such-command-in-path-xyz 2>"$D/err"
	rc=$?
	check "command not found in PATH: exit 127" "exit $rc" test $rc -eq 127
	printf '#!/bin/sh\necho ran\n' >"$D/noexec"
	chmod 644 "$D/noexec"
	"$B" run --lock "$L" --log "$LOG" -- "$D/noexec" >"$D/out" 2>"$D/err"
	rc=$?
	check "command not executable: exit 126" "exit $rc, stdout $(cat "$D/out")" test $rc -eq 126
	"$B" run --lock "$L" --log "$LOG" -- 2>"$D/err"
	rc=$?
	check "no command: exit 64" "exit $rc" test $rc -eq 64
	"$B" run --lock "$L" 2>"$D/err"
	rc=$?
	check "no command and no --: exit 64" "exit $rc" test $rc -eq 64
	local args
	for args in "-w banana" "--timeout -1s" "--grace nonsense"; do
		# shellcheck disable=SC2086
		"$B" run $args --lock "$L" --log "$LOG" -- touch "$D/ran" 2>"$D/err"
		rc=$?
		n=$(grep -c '^runnerlock: error: ' "$D/err")
		if [ $rc -eq 64 ] && [ "$n" -eq 1 ] && [ ! -e "$D/ran" ]; then
			ok "bad duration ($args): exit 64, one line 'runnerlock: error: ...' on stderr"
		else
			fail "bad duration ($args)" "exit $rc, $n error lines, stderr: $(tr '\n' '|' <"$D/err")"
		fi
	done
	check "after bad input no lock is left behind" "$(kernel_entries "$L")" kernel_free "$L"
	terminals "exit statuses: every start has one terminal record" "$LOG"
}

t_unusable_paths() {
	newcase unusable
	local rc m0 m1 t0 t1
	printf 'precious\n' >"$D/target"
	touch -d '2020-01-02 03:04:05' "$D/target"
	m0=$(stat -c '%Y %s' "$D/target")
	ln -s "$D/target" "$D/link"
	"$B" run --lock "$D/link" --log "$LOG" -- touch "$D/ran" 2>"$D/err"
	rc=$?
	m1=$(stat -c '%Y %s' "$D/target")
	if [ $rc -eq 73 ] && [ "$m0" = "$m1" ] && [ "$(cat "$D/target")" = precious ] &&
		[ ! -e "$D/ran" ] && [ -L "$D/link" ]; then
		ok "a symlinked lock path is refused with 73; target content and mtime untouched"
	else
		fail "symlinked lock path" "exit $rc, mtime/size $m0 -> $m1, content $(cat "$D/target"), ran: $([ -e "$D/ran" ] && echo yes || echo no)"
	fi
	check "symlink refusal: one 'runnerlock: error:' line naming the path" "$(cat "$D/err")" \
		grep -q "^runnerlock: error: .*$D/link" "$D/err"

	ln -s "$D/missing" "$D/dangling"
	"$B" run --lock "$D/dangling" -- touch "$D/ran" 2>"$D/err"
	rc=$?
	check "a dangling symlink is refused with 73 and its target is not created" \
		"exit $rc, target exists: $([ -e "$D/missing" ] && echo yes || echo no)" \
		eval "[ $rc -eq 73 ] && [ ! -e '$D/missing' ] && [ ! -e '$D/ran' ]"

	mkfifo "$D/fifo"
	t0=$(now_ms)
	timeout 5 "$B" run --lock "$D/fifo" -- touch "$D/ran" 2>"$D/err"
	rc=$?
	t1=$(now_ms)
	check "a FIFO at the lock path is refused with 73 without hanging ($((t1 - t0)) ms)" \
		"exit $rc (124 means it hung)" test $rc -eq 73

	mkdir "$D/dir"
	echo keep >"$D/dir/notes"
	"$B" run --lock "$D/dir" -- touch "$D/ran" 2>"$D/err"
	rc=$?
	check "a directory holding a file other than pid is refused with 73 and left alone" \
		"exit $rc, dir: $(ls -A "$D/dir" | tr '\n' ' ')" \
		eval "[ $rc -eq 73 ] && [ \"\$(ls -A '$D/dir')\" = notes ] && [ ! -e '$D/ran' ]"
}

t_stray_child() {
	newcase stray
	local rc sl t0 t1
	t0=$(now_ms)
	"$B" run --lock "$L" --log "$LOG" -- sh -c 'sleep 300 & echo $! >"$1"; echo started' sh "$D/child" >"$D/out"
	rc=$?
	t1=$(now_ms)
	if is_free "$L" && kernel_free "$L"; then
		ok "a stray background child: the lock is free right after runnerlock exits (run took $((t1 - t0)) ms, exit $rc)"
	else
		fail "stray child: lock free after the run" "status: $(status_json "$L"); /proc/locks: $(kernel_entries "$L")"
	fi
	sl=$(cat "$D/child" 2>/dev/null)
	check "a stray background child ends with the run (sleep $sl gone)" \
		"sleep $sl still alive" eval "[ -n '$sl' ] && ! alive '$sl'"
	check "stray child: the done event lists it as a leftover" "$(tail -n 1 "$LOG")" \
		test "$(count_events "$LOG" done "leftovers=\"?$sl")" -eq 1

	# A leftover that ignores TERM is KILLed after --grace.
	newcase stray-grace
	t0=$(now_ms)
	"$B" run --grace 1s --lock "$L" --log "$LOG" -- \
		sh -c '(trap "" TERM; : >"$1.ready"; exec sleep 300) & echo $! >"$1"
			while [ ! -e "$1.ready" ]; do sleep 0.01; done' sh "$D/child"
	rc=$?
	t1=$(now_ms)
	sl=$(cat "$D/child" 2>/dev/null)
	if [ $((t1 - t0)) -ge 800 ] && [ $((t1 - t0)) -le 3000 ] && [ -n "$sl" ] && ! alive "$sl" &&
		is_free "$L"; then
		ok "--grace 1s: a leftover that ignores TERM is KILLed; run ended after $((t1 - t0)) ms (bound 800-3000 ms), lock free"
	else
		fail "--grace 1s with a TERM-ignoring leftover" \
			"run took $((t1 - t0)) ms, exit $rc, leftover $sl alive: $(alive "$sl" && echo yes || echo no), status $(status_json "$L")"
	fi
	terminals "stray children: every start has one terminal record" "$T/stray/events.log" "$LOG"

	# A leftover that traps TERM (as a pipeline script with a clean-up trap
	# does) and goes on starting children during the grace period: the run
	# must end all of them, including those started after the first
	# signal, before it releases the lock.
	newcase stray-trap
	local run left rc2
	t0=$(now_ms)
	"$B" run --grace 1s --lock "$L" --log "$LOG" -- sh -c '
		(trap "echo TERM >>\"$1/terms\"" TERM; : >"$1/loop"; while :; do sleep 10; done) &
		while [ ! -e "$1/loop" ]; do sleep 0.01; done' sh "$D" 2>/dev/null
	rc=$?
	t1=$(now_ms)
	local free=no
	is_free "$L" && kernel_free "$L" && free=yes
	run=$(field "$LOG" start run)
	left=$(run_procs "$run" | tr '\n' ' ')
	left=${left% }
	if [ $free = yes ] && [ -z "$left" ]; then
		ok "--grace 1s: a leftover that traps TERM and starts new children is ended with all of them; lock free at exit ($((t1 - t0)) ms)"
	else
		fail "--grace 1s: a leftover that traps TERM and starts new children is ended with all of them" \
			"runnerlock exited $rc after $((t1 - t0)) ms, lock free at exit: $free; processes of run $run still alive: ${left:-none}; status now: $(status_json "$L"); $LOG: $(tail -n 1 "$LOG")"
	fi
	"$B" run -n --lock "$L" --log "$LOG" -- true 2>/dev/null
	rc2=$?
	check "after that run the next run -n gets the lock" \
		"exit $rc2 (the run's leftover $left still holds the lock, with a released record, so nobody reclaims it)" \
		test $rc2 -eq 0
}

t_grandchild() {
	newcase grandchild
	start_holder sh -c 'sleep 300 & wait' || {
		fail "grandchild" "the holder never took the lock"
		return
	}
	local sup=$HOLDER shpid sl j t0 t1 rc run
	shpid=$(field "$LOG" start cmd_pid)
	run=$(field "$LOG" start run)
	wait_for 5000 eval '[ -n "$(children_of "$shpid")" ]'
	sl=$(children_of "$shpid")
	kill -9 "$sup"
	wait_for 2000 dead "$sup"
	if ! wait_for 2000 dead "$shpid"; then
		fail "grandchild: the sh died of the parent-death signal" "sh $shpid still alive"
	fi
	check "grandchild: the killed supervisor's sleep ($sl) survives, holding the lock" \
		"sleep $sl is dead" alive "$sl"
	j=$(status_json "$L")
	if [ -n "$PY" ] && "$PY" -c '
import json, sys
j = json.loads(sys.argv[1]); sl = int(sys.argv[2])
assert j["state"] == "held", "state"
assert sl in j["holders"], "holders"
assert not j.get("pid"), "pid"
' "$j" "$sl" 2>/dev/null; then
		ok "grandchild: status --json says held, sleep $sl among the holders, no live supervisor"
	else
		fail "grandchild: status --json" "$j"
	fi
	t0=$(now_ms)
	"$B" run -n --lock "$L" --log "$LOG" -- true
	rc=$?
	t1=$(now_ms)
	if [ $rc -eq 0 ] && ! alive "$sl" && no_run_procs "$run"; then
		ok "grandchild: the next run -n ended sleep $sl, took the lock and ran in $((t1 - t0)) ms"
	else
		fail "grandchild: the next run cleans up" "exit $rc after $((t1 - t0)) ms, sleep $sl alive: $(alive "$sl" && echo yes || echo no)"
	fi
	check "grandchild: the next run logs reclaim dead_pid=$sup ended=$sl" \
		"log: $(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim "dead_pid=$sup( |\$).*ended=\"?$sl\"?( |\$)")" -eq 1
	terminals "grandchild: every start has one terminal record" "$LOG"
}

t_grandchild_trap() {
	newcase grandchild-trap
	start_holder sh -c 'exec 2>/dev/null; (trap "echo TERM >>\"$1/terms\"" TERM; : >"$1/loop"; while :; do sleep 10; done) & wait' sh "$D" || {
		fail "grandchild that traps TERM" "the holder never took the lock"
		return
	}
	local sup=$HOLDER run rc t0 t1 left
	run=$(field "$LOG" start run)
	wait_for 5000 exists "$D/loop"
	kill -9 "$sup"
	wait_for 2000 dead "$sup"
	wait_for 2000 dead "$(field "$LOG" start cmd_pid)"
	t0=$(now_ms)
	"$B" run -n --grace 1s --lock "$L" --log "$LOG" -- touch "$D/ran" 2>/dev/null
	rc=$?
	t1=$(now_ms)
	left=$(run_procs "$run" | tr '\n' ' ')
	left=${left% }
	if [ $rc -eq 0 ] && [ -e "$D/ran" ] && [ -z "$left" ]; then
		ok "grandchild that traps TERM and starts new children: run -n --grace 1s ended them all and ran ($((t1 - t0)) ms)"
	else
		fail "grandchild that traps TERM and starts new children: the next run -n --grace 1s reclaims" \
			"exit $rc after $((t1 - t0)) ms; processes of the dead run still alive: ${left:-none}; log: $(tail -n 1 "$LOG")"
	fi

	# The same with a waiter that comes after the kill: -w 5s --grace 1s.
	newcase grandchild-trap-wait
	start_holder sh -c 'exec 2>/dev/null; (trap "echo TERM >>\"$1/terms\"" TERM; : >"$1/loop"; while :; do sleep 10; done) & wait' sh "$D" || {
		fail "grandchild that traps TERM (waiter)" "the holder never took the lock"
		return
	}
	sup=$HOLDER
	run=$(field "$LOG" start run)
	wait_for 5000 exists "$D/loop"
	kill -9 "$sup"
	wait_for 2000 dead "$sup"
	wait_for 2000 dead "$(field "$LOG" start cmd_pid)"
	t0=$(now_ms)
	"$B" run -w 5s --grace 1s --lock "$L" --log "$LOG" -- touch "$D/ran" 2>/dev/null
	rc=$?
	t1=$(now_ms)
	left=$(run_procs "$run" | tr '\n' ' ')
	left=${left% }
	if [ $rc -eq 0 ] && [ -e "$D/ran" ] && [ $((t1 - t0)) -le 3500 ]; then
		ok "grandchild that traps TERM and starts new children: run -w 5s --grace 1s ended them all and ran after $((t1 - t0)) ms (bound 3500 ms)"
	else
		fail "grandchild that traps TERM and starts new children: a -w 5s --grace 1s waiter reclaims" \
			"exit $rc after $((t1 - t0)) ms; processes of the dead run still alive: ${left:-none}; log: $(tail -n 1 "$LOG")"
	fi
}

t_waiter_grandchild() {
	newcase waiter-grandchild
	start_holder sh -c 'sleep 300 & wait' || {
		fail "waiter reclaims" "the holder never took the lock"
		return
	}
	local sup=$HOLDER shpid sl w t0 ts rc
	shpid=$(field "$LOG" start cmd_pid)
	wait_for 5000 eval '[ -n "$(children_of "$shpid")" ]'
	sl=$(children_of "$shpid")
	"$B" run -w 60s --lock "$L" --log "$LOG" -- sh -c 'date +%s%N >"$1.tmp"; mv "$1.tmp" "$1"' sh "$D/started" &
	w=$!
	track "$w"
	if ! wait_for 10000 has_blocked_waiter "$L"; then
		fail "waiter reclaims" "the waiter never blocked in flock"
		return
	fi
	sleep 0.2 # let the waiter settle in its watch as well
	t0=$(now_ms)
	kill -9 "$sup"
	wait_for 2000 dead "$sup"
	if ! wait_for 5000 exists "$D/started"; then
		fail "a waiter blocked before the supervisor was killed reclaims within a second" \
			"the waiter's command had not started 5 s after the kill; sleep $sl alive: $(alive "$sl" && echo yes || echo no)"
		return
	fi
	wait "$w"
	rc=$?
	ts=$(($(cat "$D/started") / 1000000))
	if [ $((ts - t0)) -le 1000 ] && [ $rc -eq 0 ]; then
		ok "a waiter blocked before the supervisor was killed ended the grandchild and ran $((ts - t0)) ms after the kill (bound 1000 ms)"
	else
		fail "a waiter blocked before the supervisor was killed reclaims within a second" \
			"its command started $((ts - t0)) ms after the kill, exit $rc"
	fi
	check "waiter: the grandchild sleep $sl is gone" "still alive" dead "$sl"
	check "waiter: logs reclaim dead_pid=$sup with ended=$sl" "log: $(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim "dead_pid=$sup( |\$).*ended=\"?$sl")" -eq 1
	terminals "waiter reclaim: every start has one terminal record" "$LOG"
}

t_timeout() {
	newcase timeout
	local rc t0 t1 cp
	t0=$(now_ms)
	"$B" run --timeout 1s --grace 1s --lock "$L" --log "$LOG" -- \
		sh -c 'trap "" TERM; while :; do sleep 0.1; done'
	rc=$?
	t1=$(now_ms)
	if [ $rc -eq 124 ] && [ $((t1 - t0)) -le 3000 ] && [ $((t1 - t0)) -ge 1500 ]; then
		ok "a command that ignores TERM, --timeout 1s --grace 1s: exit 124 after $((t1 - t0)) ms (bound 1500-3000 ms)"
	else
		fail "a command that ignores TERM is killed within timeout+grace+1s" "exit $rc after $((t1 - t0)) ms"
	fi
	check "timeout: a timeout event is logged" "log: $(tail -n 2 "$LOG")" \
		test "$(count_events "$LOG" timeout)" -eq 1
	cp=$(field "$LOG" start cmd_pid)
	check "timeout: no process of the run is left" "process group $cp has live members" \
		eval "[ -n '$cp' ] && ! pgroup_alive '$cp'"
	terminals "timeout: every start has one terminal record" "$LOG"
}

t_signals() {
	local sig code=20 p rc
	for sig in TERM INT HUP QUIT; do
		code=$((code + 1))
		newcase "signal-$sig"
		"$B" run --lock "$L" --log "$LOG" -- sh -c '
			ulimit -c 0
			exec 2>/dev/null
			trap "echo $1 >\"$2/got\"; exit $3" "$1"
			: >"$2/ready"
			while :; do sleep 0.1; done' sh "$sig" "$D" "$code" &
		p=$!
		track "$p"
		if ! wait_for 10000 exists "$D/ready"; then
			fail "SIG$sig is forwarded" "the command never started"
			continue
		fi
		kill -"$sig" "$p"
		wait_for 5000 dead "$p"
		wait "$p" 2>/dev/null
		rc=$?
		if [ "$(cat "$D/got" 2>/dev/null)" = "$sig" ] && [ $rc -eq $code ]; then
			ok "SIG$sig sent to runnerlock reaches the command; runnerlock exits with its status $code"
		else
			fail "SIG$sig is forwarded" "command got '$(cat "$D/got" 2>/dev/null)', runnerlock exit $rc (want $code)"
		fi
	done
}

t_fences() {
	newcase fences
	local f prev=0 bad= i
	for i in 1 2 3; do
		"$B" run --lock "$L" --log "$LOG" -- sh -c 'echo "$RUNNERLOCK_FENCE" >>"$1"' sh "$D/fences"
	done
	rm -f "$L"
	"$B" run --lock "$L" --log "$LOG" -- sh -c 'echo "$RUNNERLOCK_FENCE" >>"$1"' sh "$D/fences"
	local n1
	n1=$(tail -n 1 "$D/fences")
	for f in $(head -n 4 "$D/fences"); do
		case $f in '' | *[!0-9]*) bad="not a number: '$f'" ;; esac
		[ -z "$bad" ] && [ "$f" -le "$prev" ] && bad="$f after $prev"
		prev=$f
	done
	check "fences strictly increase over 3 runs and after the lock file was deleted ($(head -n 4 "$D/fences" | tr '\n' ' '))" \
		"$bad" test -z "$bad" -a "$(wc -l <"$D/fences")" -eq 4

	printf '%s\n' '{"pid":1,"run":"x","fence":9000000000000000,"state":"released"}' >"$L"
	"$B" run --lock "$L" --log "$LOG" -- sh -c 'echo "$RUNNERLOCK_FENCE" >>"$1"' sh "$D/fences"
	"$B" run --lock "$L" --log "$LOG" -- sh -c 'echo "$RUNNERLOCK_FENCE" >>"$1"' sh "$D/fences"
	local a b
	a=$(sed -n 5p "$D/fences")
	b=$(sed -n 6p "$D/fences")
	check "fences after a record with fence 9000000000000000: $a then $b (below 2^53)" \
		"got '$a' '$b'" eval "[ -n '$a' ] && [ -n '$b' ] && [ '$a' -gt 9000000000000000 ] && [ '$b' -gt '$a' ] && [ '$b' -le 9007199254740991 ]"
	check "fences: the future record caused no reclaim" "$(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim)" -eq 0
}

t_contenders() {
	newcase contenders
	local i pids=() t0 t1 n
	t0=$(now_ms)
	for i in 1 2 3 4 5 6; do
		(
			for r in $(seq 20); do
				"$B" run -w 60s --lock "$L" --log "$LOG" -- true ||
					echo "loop $i run $r: exit $?" >>"$D/errors"
			done
		) &
		pids+=($!)
	done
	track "${pids[@]}"
	wait "${pids[@]}"
	t1=$(now_ms)
	n=$(count_events "$LOG" start)
	check "6 contenders x 20 runs with -w: all 120 ran ($n starts, $((t1 - t0)) ms)" \
		"errors: $(head -n 3 "$D/errors" 2>/dev/null | tr '\n' ';')" \
		eval "[ ! -e '$D/errors' ] && [ '$n' -eq 120 ]"
	check "many contenders with no kills: no reclaim and no killed events" \
		"$(grep -E '^[^ ]+ (reclaim|killed) ' "$LOG" | head -n 2)" \
		test "$(($(count_events "$LOG" reclaim) + $(count_events "$LOG" killed)))" -eq 0
	terminals "many contenders: every start has one terminal record" "$LOG"
}

t_status() {
	newcase status
	HOLDER_FLAGS=(--session abc)
	start_holder sleep 300 || {
		HOLDER_FLAGS=()
		fail "status" "the holder never took the lock"
		return
	}
	HOLDER_FLAGS=()
	local out j rc
	out=$("$B" status --lock "$L")
	rc=$?
	if [ $rc -eq 0 ] && grep -qE "^state +held" <<<"$out" && grep -qE "^pid +$HOLDER( |\$)" <<<"$out" &&
		grep -qE "^session +abc\$" <<<"$out"; then
		ok "status names the holder's pid $HOLDER and session abc while held"
	else
		fail "status while held" "exit $rc: $(tr '\n' '|' <<<"$out")"
	fi
	j=$(status_json "$L")
	if [ -z "$PY" ]; then
		skip "status --json fields parse" "python3 is missing"
	elif "$PY" -c '
import json, sys, datetime
j = json.loads(sys.argv[1]); p = int(sys.argv[2])
assert j["state"] == "held" and j["pid"] == p and j["session"] == "abc", "who"
assert p in j["holders"] and isinstance(j["fence"], int) and j["fence"] > 0, "holders/fence"
assert j["command"] == ["sleep", "300"], "command"
datetime.datetime.fromisoformat(j["since"].replace("Z", "+00:00"))
assert j["path"] == sys.argv[3], "path"
' "$j" "$HOLDER" "$L" 2>"$D/pyerr"; then
		ok "status --json while held: state, pid, session, since, fence, command, holders parse"
	else
		fail "status --json while held" "$(tail -n 1 "$D/pyerr"): $j"
	fi
	stop "$HOLDER"
	out=$("$B" status --lock "$L")
	rc=$?
	j=$(status_json "$L")
	if [ $rc -eq 0 ] && grep -qE "^state +free" <<<"$out" && [[ $j == *'"state":"free"'* ]] &&
		{ [ -z "$PY" ] || "$PY" -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["holders"] == []' "$j"; }; then
		ok "status says free when free (text and --json)"
	else
		fail "status when free" "exit $rc: $(tr '\n' '|' <<<"$out") $j"
	fi
	out=$("$B" status --lock "$D/never-created")
	rc=$?
	check "status of a path that does not exist: free, exit 0, nothing created" "exit $rc: $out" \
		eval "[ $rc -eq 0 ] && [ ! -e '$D/never-created' ]"
}

# A record that says running for a dead pid with run id R, while a process
# that is not of run R holds the lock: a fresh holder that has not yet
# written its record. Contenders must leave it alone.
fake_record() { # PATH RUN
	local dp
	true &
	dp=$!
	wait "$dp"
	printf '{"pid":%d,"pid_start":1,"run":"%s","since":"2026-01-01T00:00:00Z","command":["x"],"boot_id":"%s","pid_ns":"%s","fence":5,"state":"running"}\n' \
		"$dp" "$2" "$BOOT_ID" "$PIDNS" >"$1"
	FAKE_PID=$dp
}

t_paused_holder() {
	newcase paused-holder
	if ! command -v flock >/dev/null; then
		skip "a paused holder is not killed" "flock(1) is missing"
		return
	fi
	local fl rc t0 t1
	fake_record "$L" deadrun0000000001
	flock "$L" sleep 10 &
	fl=$!
	track "$fl"
	if ! wait_for 5000 is_held "$L"; then
		fail "paused holder" "flock(1) never took the lock"
		return
	fi
	"$B" run -n --lock "$L" --log "$LOG" -- touch "$D/ran"
	rc=$?
	check "a holder paused before writing its record (record: running, dead pid $FAKE_PID): run -n exits 75" \
		"exit $rc" test $rc -eq 75
	check "paused holder: run -n did not kill the flock(1) holder" "flock $fl is dead" alive "$fl"
	t0=$(now_ms)
	"$B" run -w 1s --lock "$L" --log "$LOG" -- touch "$D/ran"
	rc=$?
	t1=$(now_ms)
	check "paused holder: a -w 1s waiter exits 75 after $((t1 - t0)) ms and did not kill it either" \
		"exit $rc, flock alive: $(alive "$fl" && echo yes || echo no)" \
		eval "[ $rc -eq 75 ] && alive '$fl' && [ ! -e '$D/ran' ]"
	check "paused holder: no reclaim logged" "$(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim)" -eq 0
	kill "$fl" 2>/dev/null
	wait "$fl" 2>/dev/null

	# Control: the same, but the holder carries the dead run's id in its
	# environment, so it is that run's leftover and must be ended.
	newcase paused-holder-control
	fake_record "$L" deadrun0000000002
	RUNNERLOCK_RUN=deadrun0000000002 flock "$L" sleep 10 &
	fl=$!
	track "$fl"
	if ! wait_for 5000 is_held "$L"; then
		fail "paused holder control" "flock(1) never took the lock"
		return
	fi
	"$B" run -n --grace 2s --lock "$L" --log "$LOG" -- touch "$D/ran"
	rc=$?
	check "control: a holder carrying the dead run's RUNNERLOCK_RUN is ended and the run goes ahead" \
		"exit $rc, flock alive: $(alive "$fl" && echo yes || echo no)" \
		eval "[ $rc -eq 0 ] && ! alive '$fl' && [ -e '$D/ran' ]"
	check "control: reclaim names dead_run=deadrun0000000002 and the ended pid $fl" "$(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim "dead_run=\"deadrun0000000002\".*ended=\"?([0-9]+,)*$fl")" -eq 1
	wait "$fl" 2>/dev/null
}

t_terminal() {
	newcase terminal
	if ! command -v script >/dev/null; then
		skip "a command run from a terminal" "script(1) from util-linux is missing"
		return
	fi
	local rc out t0 t1
	# Input typed at the terminal reaches the command.
	{
		wait_for 10000 eval "[ \"\$(count_events '$LOG' start)\" -ge 1 ]"
		printf 'hello\n'
		wait_for 10000 exists "$D/done1"
	} | {
		timeout 20 script -qfec "$(printf '%q ' "$B" run --lock "$L" --log "$LOG" -- sh -c 'read x; echo "got $x"')" /dev/null >"$D/out1"
		echo $? >"$D/rc1"
		touch "$D/done1"
	}
	out=$(tr -d '\r' <"$D/out1")
	check "under a terminal (script -qfec) the command reads the terminal: 'got hello'" \
		"exit $(cat "$D/rc1"), output: $(tr '\n' '|' <<<"$out")" \
		eval "[ \"\$(cat '$D/rc1')\" = 0 ] && grep -qx 'got hello' <<<\"\$out\""

	# Ctrl-C at the terminal reaches the command.
	{
		wait_for 10000 eval "[ \"\$(count_events '$LOG' start)\" -ge 2 ]"
		sleep 0.1
		date +%s%N >"$D/sent"
		printf '\003'
		wait_for 10000 exists "$D/done2"
	} | {
		timeout 20 script -qfec "$(printf '%q ' "$B" run --lock "$L" --log "$LOG" -- sleep 30)" /dev/null >"$D/out2"
		echo $? >"$D/rc2"
		date +%s%N >"$D/ended"
		touch "$D/done2"
	}
	rc=$(cat "$D/rc2")
	t0=$(($(cat "$D/sent" 2>/dev/null || echo 0) / 1000000))
	t1=$(($(cat "$D/ended") / 1000000))
	if [ "$rc" = 130 ] && [ $((t1 - t0)) -le 2000 ]; then
		ok "under a terminal Ctrl-C reaches the command: exit 130, $((t1 - t0)) ms after ^C (bound 2000 ms)"
	else
		fail "Ctrl-C under a terminal" "exit $rc, $((t1 - t0)) ms after ^C, output: $(tr '\r\n' '||' <"$D/out2")"
	fi
	terminals "terminal: every start has one terminal record" "$LOG"
}

t_environment() {
	newcase environment
	local rc run fence
	exec 9>"$D/fd9-file"
	"$B" run --session env-s --lock "$L" --log "$LOG" -- sh -c '
		env >"$1/env"
		if [ -e /proc/self/fd/9 ]; then echo open; else echo closed; fi >"$1/fd9"
		readlink /proc/$$/fd/3 >"$1/fd3"' sh "$D"
	rc=$?
	exec 9>&-
	run=$(field "$LOG" start run)
	fence=$(field "$LOG" start fence)
	if [ $rc -eq 0 ] && grep -qx "RUNNERLOCK_SESSION=env-s" "$D/env" &&
		grep -qx "RUNNERLOCK_LOCK=$L" "$D/env" && grep -qx "RUNNERLOCK_RUN=$run" "$D/env" &&
		grep -qx "RUNNERLOCK_FENCE=$fence" "$D/env" && [ -n "$run" ] && [ -n "$fence" ]; then
		ok "the command gets RUNNERLOCK_SESSION, RUNNERLOCK_FENCE ($fence), RUNNERLOCK_LOCK and RUNNERLOCK_RUN ($run)"
	else
		fail "the command's environment" "exit $rc: $(grep ^RUNNERLOCK_ "$D/env" | tr '\n' ' ') (log run=$run fence=$fence)"
	fi
	check "a descriptor the caller had open on fd 9 is not open in the command" \
		"fd 9 is $(cat "$D/fd9")" test "$(cat "$D/fd9")" = closed
	check "the command holds the lock file on fd 3" "fd 3 is $(cat "$D/fd3")" \
		test "$(cat "$D/fd3")" = "$L"
}

t_hostile_signals() {
	newcase hostile
	if [ -z "$PY" ]; then
		skip "signal mask and dispositions" "python3 is missing"
		return
	fi
	cat >"$D/hostile.py" <<'EOF'
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})
signal.signal(signal.SIGINT, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])
EOF
	local rc blk ign t0 t1
	# Control: the helper really starts a program in that state.
	"$PY" "$D/hostile.py" "$(command -v grep)" -E "^Sig(Blk|Ign):" /proc/self/status >"$D/control"
	blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$D/control")
	ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "$D/control")
	check "control: the helper starts programs with signals blocked ($blk) and ignored ($ign)" \
		"SigBlk=$blk SigIgn=$ign" eval "[ '$blk' != 0000000000000000 ] && [ '$ign' != 0000000000000000 ]"
	# The command is grep itself, so that what it reads is what runnerlock
	# gave it (a shell blocks every signal while it waits for a child).
	"$PY" "$D/hostile.py" "$B" run --lock "$L" --log "$LOG" -- \
		grep -E "^Sig(Blk|Ign):" /proc/self/status >"$D/sig"
	rc=$?
	blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$D/sig")
	ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "$D/sig")
	if [ $rc -eq 0 ] && [ "$blk" = 0000000000000000 ] && [ "$ign" = 0000000000000000 ]; then
		ok "started with SIGALRM+SIGTERM blocked and SIGINT ignored, the command has an empty mask and default dispositions"
	else
		fail "the command's signal state" "exit $rc, SigBlk=$blk SigIgn=$ign"
	fi
	start_holder sleep 300 || {
		fail "hostile -w 1s" "the holder never took the lock"
		return
	}
	t0=$(now_ms)
	"$PY" "$D/hostile.py" "$B" run -w 1s --lock "$L" --log "$LOG" -- touch "$D/ran"
	rc=$?
	t1=$(now_ms)
	check "in that hostile signal state -w 1s still times out: exit 75 after $((t1 - t0)) ms (bound 700-2500 ms)" \
		"exit $rc after $((t1 - t0)) ms" \
		eval "[ $rc -eq 75 ] && [ $((t1 - t0)) -ge 700 ] && [ $((t1 - t0)) -le 2500 ] && [ ! -e '$D/ran' ]"
	stop "$HOLDER"
}

t_rotation() {
	newcase rotation
	local p rc run
	"$B" run --lock "$L" --log "$LOG" -- sh -c '
		: >"$1/ready"
		while [ ! -e "$1/go" ]; do sleep 0.05; done' sh "$D" &
	p=$!
	track "$p"
	if ! wait_for 10000 exists "$D/ready"; then
		fail "log rotation" "the command never started"
		return
	fi
	mv "$LOG" "$LOG.1"
	touch "$D/go"
	wait "$p"
	rc=$?
	run=$(field "$LOG.1" start run)
	check "a log rotated during the run (mv log log.1): start in log.1, the terminal event in the new log" \
		"exit $rc; log.1: $(tr '\n' '|' <"$LOG.1"); log: $(tr '\n' '|' <"$LOG" 2>/dev/null)" \
		eval "[ $rc -eq 0 ] && [ -n '$run' ] && [ \"\$(count_events '$LOG' done 'run=\"$run\"')\" -eq 1 ]"
	terminals "rotation: every start has one terminal record across log.1 and log" "$LOG.1" "$LOG"

	# Moved away and recreated by the rotator (logrotate's create mode).
	newcase rotation-create
	"$B" run --lock "$L" --log "$LOG" -- sh -c '
		: >"$1/ready"
		while [ ! -e "$1/go" ]; do sleep 0.05; done' sh "$D" &
	p=$!
	track "$p"
	if ! wait_for 10000 exists "$D/ready"; then
		fail "log rotation (create)" "the command never started"
		return
	fi
	mv "$LOG" "$LOG.1"
	: >"$LOG"
	touch "$D/go"
	wait "$p"
	rc=$?
	run=$(field "$LOG.1" start run)
	check "a log moved away and recreated during the run: the terminal event lands in the new file" \
		"exit $rc; log.1: $(tr '\n' '|' <"$LOG.1"); log: $(tr '\n' '|' <"$LOG" 2>/dev/null)" \
		eval "[ $rc -eq 0 ] && [ -n '$run' ] && [ \"\$(count_events '$LOG' done 'run=\"$run\"')\" -eq 1 ]"
}

t_timed_out_waiter() {
	newcase timed-out-waiter
	start_holder sleep 300 || {
		fail "timed-out waiter" "the holder never took the lock"
		return
	}
	local w rc t0 t1
	t0=$(now_ms)
	"$B" run -w 1s --lock "$L" --log "$LOG" -- touch "$D/ran" &
	w=$!
	track "$w"
	wait "$w"
	rc=$?
	t1=$(now_ms)
	check "a -w 1s waiter on a held lock exits 75 after $((t1 - t0)) ms (bound 700-2500 ms)" \
		"exit $rc after $((t1 - t0)) ms" \
		eval "[ $rc -eq 75 ] && [ $((t1 - t0)) -ge 700 ] && [ $((t1 - t0)) -le 2500 ]"
	check "the timed-out waiter is gone and left no blocked entry in /proc/locks" \
		"pid $w alive: $(alive "$w" && echo yes || echo no); /proc/locks: $(kernel_entries "$L")" \
		eval "! alive '$w' && ! has_blocked_waiter '$L'"
	stop "$HOLDER"
	if [ -z "$(kernel_entries "$L")" ] && { ! command -v flock >/dev/null || flock -n "$L" true; } &&
		[ ! -e "$D/ran" ]; then
		ok "after the holder ends the lock is free at once: the timed-out waiter never took it"
	else
		fail "the timed-out waiter never takes the lock later" \
			"/proc/locks: $(kernel_entries "$L"); ran: $([ -e "$D/ran" ] && echo yes || echo no)"
	fi
}

# ---------------------------------------------------------------------------

T_START=$(now_ms)
echo "# runnerlock: $B ($("$B" --version 2>/dev/null))"
# A child that closed fd 3 (as Python's subprocess does by default) keeps no
# lock, so after kill -9 of its supervisor the next run takes the lock at
# once; it must end that child (tied by RUNNERLOCK_RUN) before it runs.
t_stray_without_lock() {
	newcase stray-without-lock
	start_holder sh -c 'sleep 300 3>&- & wait' || {
		fail "stray without lock" "the holder never took the lock"
		return
	}
	local sup=$HOLDER shpid sl rc
	shpid=$(field "$LOG" start cmd_pid)
	wait_for 5000 eval '[ -n "$(children_of "$shpid")" ]'
	sl=$(children_of "$shpid")
	kill -9 "$sup"
	wait_for 2000 dead "$sup"
	wait_for 2000 dead "$shpid"
	check "stray without lock: sleep $sl outlived its supervisor without the lock" \
		"sleep $sl is dead or holds the lock" eval 'alive "$sl" && is_free "$L"'
	# Alive means running: a killed stray may stay a zombie until init reaps it.
	"$B" run -n --lock "$L" --log "$LOG" -- sh -c \
		'st=$(sed "s/.*) //" /proc/$0/stat 2>/dev/null | cut -c1); [ -z "$st" ] || [ "$st" = Z ] || exit 9' "$sl"
	rc=$?
	check "stray without lock: the next run ended sleep $sl before its command ran" \
		"exit $rc (9: the stray was alive during the new run)" test "$rc" -eq 0
	check "stray without lock: the reclaim names sleep $sl among the ended" \
		"log: $(grep reclaim "$LOG")" \
		test "$(count_events "$LOG" reclaim "ended=\"?([0-9]+,)*$sl(,[0-9]+)*\"?( |\$)")" -eq 1
}

# A chain of processes that fork and exit at once moves faster than a scan
# of /proc; the run must still end it before it releases the lock.
t_fork_chain() {
	newcase fork-chain
	cat >"$D/hop.sh" <<EOS
#!/bin/sh
[ -e "$D/stop" ] && exit 0
"$D/hop.sh" &
exit 0
EOS
	chmod +x "$D/hop.sh"
	local i rc bad=0
	for i in 1 2 3 4 5; do
		"$B" run --grace 200ms --lock "$L" --log "$LOG" -- sh -c '"$0"/hop.sh; sleep 0.2' "$D"
		"$B" run -n --lock "$L" --log "$LOG" -- true
		rc=$?
		[ $rc -eq 0 ] || bad=$((bad + 1))
	done
	touch "$D/stop"
	check "fork chain: 5 of 5 runs ended the chain before releasing (the next run got the lock)" \
		"$bad of 5 next runs were busy" test "$bad" -eq 0
	terminals "fork chain: every start has one terminal record" "$LOG"
}

t_kill9_holder
t_kill9_waiter
t_exclusion
t_busy
t_exit_statuses
t_unusable_paths
t_stray_child
t_grandchild
t_grandchild_trap
t_waiter_grandchild
t_timeout
t_signals
t_fences
t_contenders
t_status
t_paused_holder
t_terminal
t_environment
t_hostile_signals
t_rotation
t_timed_out_waiter
t_stray_without_lock
t_fork_chain

finish test-run.sh
