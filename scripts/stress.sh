#!/usr/bin/env bash
# stress.sh: prove G1 (mutual exclusion), G3 (nothing outlives its run) and
# G5 (every run leaves one record) of DESIGN.md under load and kill -9.
#
# N contenders loop `runnerlock run -w 30s --grace 1s -- sh cs.sh ...` on one
# lock and one event log, while a killer sends kill -9 at random to
# supervisors (any runnerlock process, and the holder named by the lock's
# record) and to commands (the critical section's shell, or the grandchild
# `sleep` it leaves running, so that a killed supervisor leaves leftovers
# that the next holder must reclaim).
#
# The critical-section detector. Each section, on entry, writes a marker
# inside.RUN naming its pid (and later the pid of any sleep it starts), and
# then looks at every other marker: one whose recorded process is still
# running as a process of that run (its /proc/PID/environ holds
# RUNNERLOCK_RUN=that run) is an overlap. A section killed by kill -9 leaves
# its marker behind, but its processes are dead, so it is never mistaken for
# a live one: a reused pid carries another run's id; a zombie, or a process
# past exit_mm, shows an empty environ; and the kernel drops a flock only in
# the exit of its last holder, after exit_mm, so a process of the old run
# whose environ can still be read still holds the lock. Dead markers are
# removed by whoever finds them. As a second, independent detector, each
# section appends `enter`/`leave` lines with date +%s%N and its fence:
# both timestamps are taken inside the section, so two runs' [enter, leave]
# intervals that intersect prove an overlap, and the fences, in the order the
# sections entered, must only grow.
#
# A negative control runs first: the same detector with each contender on a
# lock of its own must find overlaps with both detectors, or the harness
# fails. Checks at the end: no overlap; every `start` has exactly one
# terminal event (done, post_error, killed, timeout) or one `reclaim` naming
# it (dead_run=); a run with both counts once, its terminal event standing
# (see supervise.Run); no torn log line; the lock is free; no process of any
# run is left. It fails when the kill phase made no kill of either kind or no
# reclaim.
#
# Usage:
#   scripts/stress.sh --short            CI: about 25 s
#   scripts/stress.sh                    about 60 s
#   scripts/stress.sh --acquisitions N   until N runs have started (ROUNDS=N too)
#   options: --contenders N (CONTENDERS, default 6), --seconds S (kill phase),
#            --keep (keep the work directory)
# RUNNERLOCK_BIN names a built binary; otherwise it is built into the work
# directory. Prints `ok - ` / `FAIL - ` lines and a summary; exits 1 on failure.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=medium
seconds=
acquisitions=${ROUNDS:-}
contenders=${CONTENDERS:-6}
keep=

while [ $# -gt 0 ]; do
	case $1 in
	--short) mode=short ;;
	--medium) mode=medium ;;
	--acquisitions) acquisitions=$2; shift ;;
	--acquisitions=*) acquisitions=${1#*=} ;;
	--contenders) contenders=$2; shift ;;
	--seconds) seconds=$2; shift ;;
	--keep) keep=1 ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "stress.sh: unknown argument $1" >&2; exit 64 ;;
	esac
	shift
done
if [ -z "$seconds" ]; then
	case $mode in short) seconds=14 ;; *) seconds=50 ;; esac
fi
[ -n "$acquisitions" ] && mode=long

# A harness started from inside a run must not pass for one.
unset RUNNERLOCK_RUN RUNNERLOCK_SESSION RUNNERLOCK_FENCE RUNNERLOCK_LOCK RUNNERLOCK_LOG

work=$(mktemp -d "${TMPDIR:-/tmp}/runnerlock-stress.XXXXXX")
# ok, fail, finish
. "$root/scripts/testlib.sh"
note() { echo "# $*"; }

if [ -n "${RUNNERLOCK_BIN:-}" ]; then
	bin=$RUNNERLOCK_BIN
else
	note "building runnerlock into $work"
	bash "$root/scripts/build.sh" "$work/runnerlock" || { fail "go build"; exit 1; }
	bin=$work/runnerlock
fi
bin=$(readlink -f "$bin")

# Every process of this harness carries the tag, so that the killer and the
# leftover check only ever look at processes we started.
tag=$$.$RANDOM$RANDOM
export RUNNERLOCK_STRESS_TAG=$tag

# bg_pids: the loops we started; stopped by pid on the way out.
bg_pids=()
cleanup() {
	local p
	touch "$work/stop" 2>/dev/null
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	for p in $(run_procs); do kill -9 "$p" 2>/dev/null; done
	if [ "$FAILS" -eq 0 ] && [ -z "$keep" ]; then
		rm -rf "$work"
	else
		echo "# work directory kept: $work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_procs prints the pids of live processes of any run of this harness:
# they carry our tag and a RUNNERLOCK_RUN (supervisors and loops do not).
run_procs() {
	local f p
	for f in /proc/[0-9]*/environ; do
		p=${f#/proc/}
		p=${p%/environ}
		[ "$p" = "$BASHPID" ] && continue
		grep -qzx "RUNNERLOCK_STRESS_TAG=$tag" "$f" 2>/dev/null &&
			grep -qz '^RUNNERLOCK_RUN=' "$f" 2>/dev/null && echo "$p"
	done
}

# of_run PID RUN: PID is a live process of run RUN (not a zombie, not past
# exit_mm, not a reused pid).
of_run() {
	[ -e "/proc/$1" ] && grep -qzx "RUNNERLOCK_RUN=$2" "/proc/$1/environ" 2>/dev/null
}

# The critical section, run by dash. $1: plain, tail (a grandchild sleep
# the section waits for) or leave (a grandchild sleep left running when the
# section ends, for the supervisor to end); $2: seconds of work; $3: the
# grandchild's seconds.
cat >"$work/cs.sh" <<'EOF'
run=$RUNNERLOCK_RUN
m=$STRESS_IN/inside.$run
echo "$$ sh" >"$m"
for f in "$STRESS_IN"/inside.*; do
	[ "$f" = "$m" ] && continue
	[ -e "$f" ] || continue
	other=${f##*/inside.}
	live=
	seen=
	{ while read -r p role; do
		seen=1
		if grep -qzx "RUNNERLOCK_RUN=$other" "/proc/$p/environ" 2>/dev/null; then
			live="$live $p:$role:$(tr -d '\n' <"/proc/$p/stat" 2>/dev/null | cut -d' ' -f1-9)"
		fi
	done <"$f"; } 2>/dev/null
	if [ -n "$live" ]; then
		echo "$(date +%s%N) overlap run=$run fence=$RUNNERLOCK_FENCE pid=$$ other_run=$other alive=[$live ]" >>"$STRESS_OVERLAPS"
	elif [ -n "$seen" ]; then
		rm -f "$f"
	fi
done
echo "enter $(date +%s%N) $run $RUNNERLOCK_FENCE $$ $1" >>"$STRESS_TRACE"
[ "$2" = 0 ] || sleep "$2"
case $1 in
tail | leave)
	sleep "$3" &
	echo "$! sleep" >>"$m"
	echo "$! $run" >>"$STRESS_SLEEPS"
	;;
esac
[ "$1" = tail ] && wait
echo "leave $(date +%s%N) $run $RUNNERLOCK_FENCE $$ $1" >>"$STRESS_TRACE"
# A leftover sleep keeps the lock: its marker stays, judged by liveness.
[ "$1" = leave ] || rm -f "$m"
EOF

# contender I LOCK DIR: loop runs until DIR/../stop exists.
contender() {
	local i=$1 lockp=$2 d=$3 neg=$4 r variant body tail pid rc
	local bodies=(0 0 0 0 0.005 0.01 0.02)
	local tails=(0.1 0.2 0.3 0.5)
	export STRESS_IN=$d/in STRESS_TRACE=$d/trace STRESS_OVERLAPS=$d/overlaps
	export STRESS_SLEEPS=$d/sleeps
	while [ ! -e "$work/stop" ]; do
		r=$((RANDOM % 100))
		if [ -n "$neg" ]; then
			variant=plain body=0.05 tail=0
		else
			body=${bodies[RANDOM % ${#bodies[@]}]}
			tail=${tails[RANDOM % ${#tails[@]}]}
			if [ $r -lt 7 ]; then variant=tail
			elif [ $r -lt 14 ]; then variant=leave
			else variant=plain
			fi
		fi
		"$bin" run -w 30s --grace 1s --lock "$lockp" --log "$d/events.log" -- \
			sh "$work/cs.sh" "$variant" "$body" "$tail" >>"$d/out.$i" 2>>"$d/err.$i" &
		pid=$!
		echo "$pid" >"$d/sup.$i"
		wait "$pid"
		rc=$?
		echo "$rc" >>"$d/rc.$i"
	done
}

# killer DIR LOCK: kill -9 at random, every 50-350 ms, until stop.
killer() {
	local d=$1 lockp=$2 pids p f run rec cands target what now
	while [ ! -e "$work/stop" ]; do
		sleep "0.$((RANDOM % 30 + 5))"
		target= what=
		case $((RANDOM % 5)) in
		0 | 1) # the holder's supervisor, as the lock's record names it; if
			# a section's grandchild runs, wait a moment for the holder to
			# be in such a run, so that its death leaves leftovers
			for p in 1 2 3 4 5 6 7 8 9 10; do
				live_sleep "$d" >/dev/null && break
				sleep 0.05
			done
			rec=$(head -c 4096 "$lockp" 2>/dev/null)
			p=$(echo "$rec" | grep -o '"pid":[0-9]*' | head -n 1)
			p=${p#*:}
			run=$(echo "$rec" | grep -o '"run":"[0-9a-f]*"' | head -n 1 | cut -d'"' -f4)
			if [ -n "$p" ] && [ -n "$run" ] && is_supervisor "$p"; then
				target=$p what="sup holder run=$run gc=$(live_sleep "$d" "$run")"
			fi
			;;
		2) # any supervisor: holder or waiter
			pids=$(cat "$d"/sup.* 2>/dev/null)
			cands=()
			for p in $pids; do is_supervisor "$p" && cands+=("$p"); done
			if [ ${#cands[@]} -gt 0 ]; then
				target=${cands[RANDOM % ${#cands[@]}]} what="sup any"
			fi
			;;
		*) # a process of a critical section: its shell or its sleep
			cands=()
			for f in "$d"/in/inside.*; do
				[ -e "$f" ] || continue
				run=${f##*/inside.}
				while read -r p role; do
					of_run "$p" "$run" && cands+=("$p:$role")
				done 2>/dev/null <"$f"
			done
			if [ ${#cands[@]} -gt 0 ]; then
				target=${cands[RANDOM % ${#cands[@]}]}
				what="cmd ${target#*:}" target=${target%%:*}
			fi
			;;
		esac
		if [ -n "$target" ]; then
			now=${EPOCHREALTIME/./}
			kill -9 "$target" 2>/dev/null && echo "$what $target t=${now}000" >>"$d/kills"
		fi
	done
}

# live_sleep DIR [RUN]: a section's grandchild sleep (of RUN) is running;
# prints its pid.
live_sleep() {
	local f p role
	for f in "$1"/in/inside.${2:-*}; do
		[ -e "$f" ] || continue
		while read -r p role; do
			if [ "$role" = sleep ] && of_run "$p" "${f##*/inside.}"; then
				echo "$p"
				return 0
			fi
		done 2>/dev/null <"$f"
	done
	return 1
}

# is_supervisor PID: a runnerlock of ours, not a process of a run.
is_supervisor() {
	[ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$bin" ] &&
		grep -qzx "RUNNERLOCK_STRESS_TAG=$tag" "/proc/$1/environ" 2>/dev/null &&
		! grep -qz '^RUNNERLOCK_RUN=' "/proc/$1/environ" 2>/dev/null
}

# intervals TRACE: print the overlaps the enter/leave lines prove and the
# fences that went backwards, one line each.
intervals() {
	sort -k2,2n "$1" | awk '
		$1 == "enter" { n++; run[n] = $3; t0[n] = $2; fence[n] = $4; idx[$3] = n }
		$1 == "leave" { if ($3 in idx) t1[idx[$3]] = $2 }
		END {
			open_run = ""; open_end = 0
			for (i = 1; i <= n; i++) {
				if (open_run != "" && t0[i] < open_end)
					printf "interval overlap: run %s entered at %d, inside %s until %d\n", run[i], t0[i], open_run, open_end
				if (i > 1 && fence[i] <= fence[i-1])
					printf "fence went back: run %s fence %s after run %s fence %s\n", run[i], fence[i], run[i-1], fence[i-1]
				if ((i in t1) && t1[i] > open_end) { open_run = run[i]; open_end = t1[i] }
			}
		}'
}

# phase NAME SECONDS [neg]: start the contenders and, unless neg, the killer.
start_phase() {
	local d=$1 neg=$2 i lockp
	mkdir -p "$d/in"
	: >"$d/trace"; : >"$d/overlaps"; : >"$d/sleeps"; : >"$d/kills"; : >"$d/events.log"
	rm -f "$work/stop"
	bg_pids=()
	for i in $(seq 1 "$contenders"); do
		lockp=$d/lock
		[ -n "$neg" ] && lockp=$d/lock.$i
		# bash reports each killed job on stderr: keep that out of sight.
		contender "$i" "$lockp" "$d" "$neg" 2>>"$d/loop.$i" &
		bg_pids+=($!)
	done
	if [ -z "$neg" ]; then
		killer "$d" "$d/lock" 2>>"$d/loop.killer" &
		bg_pids+=($!)
	fi
}

# stop_phase DIR: ask the loops to stop and wait for them, 90 s at most.
stop_phase() {
	local d=$1 p waited=0
	touch "$work/stop"
	for p in "${bg_pids[@]}"; do
		while kill -0 "$p" 2>/dev/null; do
			sleep 0.2
			waited=$((waited + 1))
			if [ $waited -gt 450 ]; then
				fail "the contenders did not stop within 90 s: a hang"
				"$bin" status --lock "$d/lock" --json
				ps -eo pid,ppid,pgid,stat,etime,args | grep -F -e runnerlock -e cs.sh | grep -v grep
				exit 1
			fi
		done
	done
	wait 2>/dev/null
	bg_pids=()
}

count() { grep -c "$@" 2>/dev/null || true; }
t_start=$(date +%s)

# ---- negative control: one lock per contender must overlap -------------
neg=$work/neg
start_phase "$neg" neg
sleep 3
stop_phase "$neg"
n_live=$(count overlap "$neg/overlaps")
n_int=$(intervals "$neg/trace" | count 'interval overlap')
n_enter=$(count '^enter' "$neg/trace")
if [ "$n_live" -gt 0 ] && [ "$n_int" -gt 0 ]; then
	ok "negative control: without a shared lock the detector saw $n_live overlaps live and $n_int by interval in $n_enter sections"
else
	fail "negative control: without a shared lock the detector saw only $n_live live and $n_int interval overlaps in $n_enter sections"
fi

# ---- kill phase --------------------------------------------------------
d=$work/main
start_phase "$d" ""
if [ "$mode" = long ]; then
	note "kill phase: $contenders contenders until $acquisitions runs have started"
else
	note "kill phase: $contenders contenders for $seconds s ($mode)"
fi
t0=$(date +%s)
last=0
last_t=$t0
while :; do
	sleep 1
	now=$(date +%s)
	started=$(count ' start ' "$d/events.log")
	if [ "$started" -ne "$last" ]; then
		last=$started last_t=$now
	elif [ $((now - last_t)) -ge 45 ]; then
		fail "no run started for 45 s: a hang"
		"$bin" status --lock "$d/lock" --json
		ps -eo pid,ppid,pgid,stat,etime,args | grep -F -e runnerlock -e cs.sh | grep -v grep
		exit 1
	fi
	if [ "$mode" = long ]; then
		[ "$started" -ge "$acquisitions" ] && break
		if [ $(((now - t0) % 60)) -eq 0 ]; then note "$((now - t0)) s: $started runs started"; fi
	else
		[ $((now - t0)) -ge "$seconds" ] && break
	fi
done
t_kill=$(($(date +%s) - t0))
stop_phase "$d"

# One more run after the kills: it reclaims what the last killed holder left.
RUNNERLOCK_STRESS_TAG=$tag "$bin" run -w 30s --grace 1s --lock "$d/lock" --log "$d/events.log" \
	-- true 2>>"$d/err.final" || fail "the final run after the kills exited $?"

# ---- checks ------------------------------------------------------------
log=$d/events.log

# The detectors.
n_live=$(count overlap "$d/overlaps")
intervals "$d/trace" >"$d/intervals"
n_int=$(count 'interval overlap' "$d/intervals")
n_back=$(count 'fence went back' "$d/intervals")
n_sections=$(count '^enter' "$d/trace")
if [ "$n_live" -eq 0 ] && [ "$n_int" -eq 0 ]; then
	ok "no overlap in $n_sections critical sections"
else
	fail "overlaps: $n_live seen live, $n_int by interval"
	head -n 5 "$d/overlaps" "$d/intervals"
fi
if [ "$n_back" -eq 0 ]; then
	ok "fences grew in the order the sections entered"
else
	fail "$n_back fences went back"
	grep 'fence went back' "$d/intervals" | head -n 5
fi

# Torn lines: each must be TIME EVENT then key=value pairs.
n_torn=$(grep -c -v -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z [a-z_]+( [a-z_]+=("([^"\\]|\\.)*"|[^ "]*))*$' "$log" || true)
if [ "$n_torn" -eq 0 ]; then
	ok "every event line is whole ($(wc -l <"$log") lines)"
else
	fail "$n_torn event lines are torn or malformed"
	grep -v -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z [a-z_]+( [a-z_]+=("([^"\\]|\\.)*"|[^ "]*))*$' "$log" | head -n 3
fi

# Records: one terminal event or one reclaim for every start.
awk '
	function val(k,   m) {
		if (match($0, " " k "=\"[^\"]*\"")) { m = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 4); return m }
		return ""
	}
	{ ev = $2; run = val("run") }
	ev == "start" { start[run]++; kind["start"]++ }
	ev == "done" || ev == "post_error" || ev == "killed" || ev == "timeout" {
		term[run]++; kind[ev]++; if (!(run in start)) noStartTerm[run] = 1 }
	ev == "reclaim" { dr = val("dead_run"); recl[dr]++; kind["reclaim"]++
		if ($0 ~ / ended=/) kind["reclaim_ended"]++ }
	ev == "skip" { kind["skip"]++ }
	ev == "error" { kind["error"]++; errs[val("reason")]++ }
	END {
		for (r in start) {
			t = term[r] + 0; c = recl[r] + 0
			if (start[r] > 1) printf "BAD run %s logged start %d times\n", r, start[r]
			if (t > 1) printf "BAD run %s has %d terminal events\n", r, t
			else if (t == 1 && c > 0) both++
			else if (t == 0 && c == 1) byReclaim++
			else if (t == 0 && c == 0) printf "BAD run %s has no terminal event and no reclaim\n", r
			if (c > 1) printf "BAD run %s is named by %d reclaims\n", r, c
		}
		for (r in recl) if (!(r in start)) { if (r == "") printf "BAD a reclaim names no run\n"; else noStartRecl++ }
		for (r in noStartTerm) printf "BAD run %s has a terminal event but no start\n", r
		for (k in kind) printf "COUNT %s %d\n", k, kind[k]
		printf "COUNT both %d\nCOUNT by_reclaim %d\nCOUNT reclaim_no_start %d\n", both, byReclaim, noStartRecl
		for (e in errs) printf "ERROR %s %d\n", e, errs[e]
	}' "$log" >"$d/records"
c() { awk -v k="$1" '$1 == "COUNT" && $2 == k { print $3; f = 1 } END { if (!f) print 0 }' "$d/records"; }
n_bad=$(count '^BAD' "$d/records")
if [ "$n_bad" -eq 0 ]; then
	ok "every start has exactly one terminal record ($(c start) starts: terminal event $(($(c start) - $(c by_reclaim))), reclaim only $(c by_reclaim), both $(c both))"
else
	fail "$n_bad runs without exactly one terminal record"
	grep '^BAD' "$d/records" | head -n 10
fi
if [ "$(count '^ERROR' "$d/records")" -eq 0 ]; then
	ok "no error event"
else
	fail "error events: $(grep '^ERROR' "$d/records" | cut -d' ' -f2- | tr '\n' ' ')"
fi

# The lock is free, with no holder left.
st=$("$bin" status --lock "$d/lock" --json 2>&1)
if echo "$st" | grep -q '"state":"free"'; then
	ok "the lock is free at the end"
else
	fail "the lock is not free at the end: $st"
fi

# No process of any run is left: not the commands the starts named, not
# the sleeps the sections started, nor anything else of a run.
left=()
while read -r p r; do
	of_run "$p" "$r" && left+=("$p(cmd of $r)")
done < <(awk '$2 == "start" && match($0, / cmd_pid=[0-9]+/) {
		p = substr($0, RSTART + 9, RLENGTH - 9)
		match($0, / run="[^"]*"/); print p, substr($0, RSTART + 6, RLENGTH - 7) }' "$log")
while read -r p r; do
	of_run "$p" "$r" && left+=("$p(sleep of $r)")
done <"$d/sleeps"
for p in $(run_procs); do left+=("$p(of a run)"); done
n_cmd=$(count ' start ' "$log")
n_sleeps=$(wc -l <"$d/sleeps")
if [ ${#left[@]} -eq 0 ]; then
	ok "no process of any run is left ($n_cmd commands, $n_sleeps grandchildren checked)"
else
	fail "processes of runs are left: ${left[*]}"
	ps -o pid,ppid,pgid,stat,etime,args -p "$(printf '%s\n' "${left[@]}" | sed 's/(.*//' | sort -u | paste -sd,)"
fi

# Waits that expired (busy after -w 30s) or odd exits of runnerlock.
rcs=$(cat "$d"/rc.* 2>/dev/null | sort -n | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
n_busy=$(cat "$d"/rc.* 2>/dev/null | count -x 75)
n_odd=$(cat "$d"/rc.* 2>/dev/null | grep -c -v -x -E '0|75|137|143' || true)
if [ "$n_busy" -eq 0 ]; then
	ok "no wait of 30 s expired"
else
	fail "$n_busy waits of 30 s expired (exit 75): starvation or a hang"
fi
if [ "$n_odd" -eq 0 ]; then
	ok "runnerlock exited only 0, 137 or 143 (statuses: $rcs)"
else
	fail "runnerlock exited with unexpected statuses: $rcs"
	grep -h . "$d"/err.* | sort | uniq -c | sort -rn | head -n 5
fi

# What the loops and the supervisors said on stderr, bash's reports of
# killed jobs aside.
n_noise=$(cat "$d"/loop.* "$d"/err.* 2>/dev/null | grep -c -v -E 'Killed|^$' || true)
if [ "$n_noise" -eq 0 ]; then
	ok "nothing unexpected on standard error"
else
	fail "$n_noise unexpected lines on standard error"
	cat "$d"/loop.* "$d"/err.* | grep -v -E 'Killed|^$' | sort | uniq -c | sort -rn | head -n 5
fi

# The kill phase did its job.
k_sup=$(count '^sup' "$d/kills")
k_sup_h=$(count '^sup holder' "$d/kills")
k_cmd=$(count '^cmd' "$d/kills")
k_cmd_s=$(count '^cmd sleep' "$d/kills")
n_recl=$(c reclaim)
n_recl_e=$(c reclaim_ended)
if [ "$k_sup" -gt 0 ] && [ "$k_cmd" -gt 0 ] && [ "$n_recl" -gt 0 ]; then
	ok "the kill phase killed $k_sup supervisors and $k_cmd commands, and $n_recl runs were reclaimed"
else
	fail "the kill phase proved little: $k_sup supervisor kills, $k_cmd command kills, $n_recl reclaims"
fi
# A holder killed while its grandchild lived left leftovers that held the
# lock: the records and leftover checks above prove they were reclaimed.
# (ended= names only what the waiter that won the lock ended itself.)
k_gc=$(count '^sup holder .* gc=[0-9]' "$d/kills")
if [ "$k_gc" -gt 0 ]; then
	ok "$k_gc holders were killed while their run's grandchild lived ($n_recl_e reclaims say ended=)"
else
	fail "no holder was killed while its run's grandchild lived: the reclaim of leftovers went untested"
fi

# How long the lock stayed out of use after a holder was killed: from the
# kill to the next section's entry (a waiter must notice the death, and end
# what the run left behind, at once).
gaps=$(awk '
	FNR == NR { if ($1 == "enter") e[++ne] = $2; next }
	$1 == "sup" && $2 == "holder" { t = $NF; sub(/^t=/, "", t); k[++nk] = t }
	END {
		j = 1
		for (i = 1; i <= nk; i++) {
			while (j <= ne && e[j] < k[i]) j++
			if (j <= ne) g[++ng] = (e[j] - k[i]) / 1e6
		}
		if (ng == 0) { print "none"; exit }
		n = asort_(g, ng)
		printf "median %.0f ms, p99 %.0f ms, max %.0f ms over %d kills", g[int((ng + 1) / 2)], g[int(0.99 * ng + 0.99)], g[ng], ng
	}
	function asort_(a, n,   i, j, x) {
		for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
		return n
	}' <(sort -k2,2n "$d/trace") "$d/kills")

t_all=$(($(date +%s) - t_start))
n_start=$(c start)
echo
echo "stress: $mode, $contenders contenders, kill phase $t_kill s, $t_all s in all"
printf '  %-26s %s\n' \
	"runs started" "$n_start ($(awk -v n="$n_start" -v t="$t_kill" 'BEGIN { printf "%.1f", n / (t ? t : 1) }')/s)" \
	"supervisor kills" "$k_sup (holder $k_sup_h, of which with a live grandchild $k_gc; any $((k_sup - k_sup_h)))" \
	"command kills" "$k_cmd (shell $((k_cmd - k_cmd_s)), grandchild sleep $k_cmd_s)" \
	"holder kill → next section" "$gaps" \
	"reclaims" "$n_recl (ended leftovers $n_recl_e; of runs that never logged start $(c reclaim_no_start); after a terminal event $(c both))" \
	"overlaps" "$n_live live, $n_int by interval (negative control: found)" \
	"terminal events" "done=$(c done) post_error=$(c post_error) killed=$(c killed) timeout=$(c timeout)" \
	"skips (busy)" "$(c skip)" \
	"error events" "$(c error)" \
	"runnerlock exit statuses" "$rcs"
if [ "$FAILS" -eq 0 ]; then echo "stress: passed"; else echo "stress: FAILED ($FAILS checks)"; fi
finish stress.sh
