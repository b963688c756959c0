#!/usr/bin/env bash
# bench.sh: runnerlock against util-linux flock(1), measured in the same run,
# interleaved (A B A B ...), printed as one markdown table with n, median
# and p90 of each and the ratio of the medians. The rows:
#
#   1  `runnerlock run -n -- true` vs `flock -n FILE true`, and the floor: a
#      bare Go program that only locks and execs (scripts/bench/barelock)
#   2  release to the waiter's command starting: a neutral holder (stamp
#      hold) drops the lock while the waiter sleeps in -w; timed from the
#      holder's close to the first instruction of the waiter's command
#   3  kill -9 of the holder to the next run's command starting; flock(1)'s
#      child keeps the lock (checked), so flock is timed with its child
#      killed too; and runnerlock once more with a grandchild to reclaim
#   4  hook return latency, if `runnerlock hook` is built: starting a long
#      run (it returns while the run goes on), and while a long run holds
#      the lock (skip)
#   5  supervisor memory while holding: VmRSS of the process that holds the
#      lock during `run -- sleep 5` (VmHWM in the notes)
#   6  throughput: 8 contenders x 100 acquisitions each with -w: wall time
#
# Commands are timed with bash's $EPOCHREALTIME around them (the same
# overhead on both sides); hand-offs with scripts/bench/stamp.c, a static C
# program that reads CLOCK_REALTIME first thing.
#
# Usage: bash scripts/bench.sh           about 2-3 minutes on 2 cores
#   N=200 bash scripts/bench.sh          samples per side (default 100; row 1
#                                        takes 3N, row 3 N/2, row 4 N/2)
#   TRIALS=10 (row 6), MEM=10 (row 5), RUNNERLOCK_BIN=path (skip the build)
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-100}
N1=${N1:-$((3 * N))}
N2=${N2:-$N}
N3=${N3:-$((N / 2))}
N4=${N4:-$((N / 2))}
MEM=${MEM:-10}
TRIALS=${TRIALS:-5}
CONTENDERS=${CONTENDERS:-8}
ACQ=${ACQ:-100}

unset RUNNERLOCK_RUN RUNNERLOCK_SESSION RUNNERLOCK_FENCE RUNNERLOCK_LOCK RUNNERLOCK_LOG
t=$(mktemp -d "${TMPDIR:-/tmp}/runnerlock-bench.XXXXXX")
cleanup() {
	local p
	exec 7>&- 2>/dev/null || true
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null || true; done
	# A run that a failed step left holding a lock: end what holds it.
	for l in "$t"/*.lock; do
		[ -e "$l" ] || continue
		for p in $(lock_holders "$l"); do kill -9 "$p" 2>/dev/null || true; done
	done
	wait 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT

say() { echo "bench: $*" >&2; }

if [ -n "${RUNNERLOCK_BIN:-}" ]; then
	rl=$RUNNERLOCK_BIN
else
	say "building runnerlock, barelock and stamp into $t"
	bash "$root/scripts/build.sh" "$t/runnerlock"
	rl=$t/runnerlock
fi
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$t/barelock" ./scripts/bench/barelock)
bare=$t/barelock
stamp=$t/stamp
if ! gcc -O2 -static -o "$stamp" "$root/scripts/bench/stamp.c" 2>/dev/null; then
	gcc -O2 -o "$stamp" "$root/scripts/bench/stamp.c"
fi
command -v flock >/dev/null || { say "flock(1) is not installed (util-linux)"; exit 1; }

us() { local v=${1/./}; echo $((10#$v)); } # $EPOCHREALTIME in microseconds

# stats FILE SCALE: "n median p90" of the numbers in FILE divided by SCALE.
stats() {
	sort -n "$1" | awk -v s="$2" '{ v[NR] = $1 / s } END {
		if (NR == 0) { print "0 - -"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		i = int(0.9 * NR + 0.999999); if (i < 1) i = 1
		printf "%d %.6f %.6f\n", NR, m, v[i] }'
}

# inode FILE; waiters INODE: the number of processes asleep in flock on it.
inode() { stat -c %i "$1"; }
waiters() { awk -v ino="$1" '$2 == "->" && $7 ~ (":" ino "$") { n++ } END { print n + 0 }' /proc/locks; }
locked() { awk -v ino="$1" '$2 == "FLOCK" && $6 ~ (":" ino "$") { f = 1 } END { exit !f }' /proc/locks; }
# lock_holders FILE: pids whose descriptor holds the lock (for clean-up).
lock_holders() {
	"$rl" status --lock "$1" --json 2>/dev/null | grep -o '"holders":\[[0-9,]*\]' | tr -dc '0-9,' | tr ',' ' '
}
# until_true CMD...: poll every 2 ms, 10 s at most.
until_true() {
	local i
	for ((i = 0; i < 5000; i++)); do
		"$@" && return 0
		sleep 0.002
	done
	say "timed out waiting for: $*"
	return 1
}
# spawn CMD...: start CMD in the background inside a wrapper subshell, so
# that a kill -9 of it is not reported on our stderr; sets hp (CMD's pid)
# and wrap (the wrapper's, to wait for).
spawn() {
	rm -f "$t/hp"
	("$@" & echo $! >"$t/hp"; wait $!) 2>/dev/null &
	wrap=$!
	until_true ready_file "$t/hp"
	hp=$(cat "$t/hp")
}
has_waiter() { [ "$(waiters "$1")" -ge 1 ]; }
ready_file() { [ -s "$1" ]; }

rows=()
# failed_note ROW: how many samples of ROW got no start of the command.
failed_note() {
	[ -s "$t/$1.failed" ] || return 0
	echo "**$(sort "$t/$1.failed" | uniq -c | awk '{ printf "%s%s: %d", s, $2, $1; s = ", " }') samples: the waiter's command never started**"
}
# row NUM WHAT SUBJECT A_FILE B_FILE SCALE UNIT TARGET_RATIO TARGET_ABS NOTE
# A and B are files of samples; B may be "-" (no flock(1) figure) and a
# NOTE then says why. A target is a ratio (TARGET_RATIO) or an absolute
# bound on A's median (TARGET_ABS), in UNIT.
row() {
	local num=$1 what=$2 subj=$3 a=$4 b=$5 scale=$6 unit=$7 tr=$8 ta=$9 note=${10}
	local an am ap bn bm bp ratio target met
	read -r an am ap < <(stats "$a" "$scale")
	if [ "$b" != - ]; then
		read -r bn bm bp < <(stats "$b" "$scale")
		ratio=$(awk -v a="$am" -v b="$bm" 'BEGIN { printf "%.2f", a / b }')
	else
		bn=- bm=- bp=- ratio=-
	fi
	target=- met=-
	if [ "$tr" != - ]; then
		target="≤ ${tr}×"
		met=$(awk -v r="$ratio" -v t="$tr" 'BEGIN { print (r <= t) ? "met" : "**missed**" }')
	elif [ "$ta" != - ]; then
		target="< $ta $unit"
		met=$(awk -v a="$am" -v t="$ta" 'BEGIN { print (a < t) ? "met" : "**missed**" }')
	fi
	f() { [ "$1" = - ] && echo - || awk -v v="$1" -v u="$unit" 'BEGIN {
		printf (v < 10 ? "%.2f %s" : (v < 100 ? "%.1f %s" : "%.0f %s")), v, u }'; }
	rows+=("| $num | $what | $subj | $an | $(f "$am") | $(f "$ap") | $bn | $(f "$bm") | $(f "$bp") | $ratio | $target | $met | $note |")
}

# ---- row 1: a short run, and the floor ----------------------------------
say "row 1: run -n -- true, $N1 each"
: >"$t/ev1"
for ((i = 0; i < N1; i++)); do
	for k in $( ((i % 2)) && echo "c b a" || echo "a b c"); do
		case $k in
		a) t0=$EPOCHREALTIME; "$rl" run -n --lock "$t/1a.lock" --log "$t/ev1" -- true
			t1=$EPOCHREALTIME ;;
		b) t0=$EPOCHREALTIME; flock -n "$t/1b.lock" true; t1=$EPOCHREALTIME ;;
		c) t0=$EPOCHREALTIME; "$bare" "$t/1c.lock" true; t1=$EPOCHREALTIME ;;
		esac
		echo $(($(us "$t1") - $(us "$t0"))) >>"$t/1$k"
	done
done
row 1 "\`run -n -- true\` vs \`flock -n FILE true\`" runnerlock "$t/1a" "$t/1b" 1000 ms 1.4 - ""
row 1f "floor: bare Go lock-and-exec vs \`flock -n\`" barelock "$t/1c" "$t/1b" 1000 ms - - \
	"what any Go binary starts from"

# ---- row 2: release to the waiter's command ------------------------------
say "row 2: release to the waiter's command, $N2 each"
mkfifo "$t/ctl"
exec 7<>"$t/ctl"
release_sample() { # TOOL LOCK OUT
	local tool=$1 lockf=$2 hp wp ino r0 r1
	rm -f "$t/hold.out" "$t/w.out"
	"$stamp" hold "$lockf" <"$t/ctl" >"$t/hold.out" &
	hp=$!
	until_true ready_file "$t/hold.out"
	ino=$(inode "$lockf")
	case $tool in
	rl) "$rl" run -w 10s --lock "$lockf" --log "$t/ev2" -- "$stamp" now >"$t/w.out" & ;;
	flock) flock -w 10 "$lockf" "$stamp" now >"$t/w.out" & ;;
	esac
	wp=$!
	until_true has_waiter "$ino"
	sleep 0.02 # let the waiter settle in its sleep (runnerlock: its watcher too)
	printf x >&7
	wait "$hp" || true
	wait "$wp" || true
	r0=$(tail -n 1 "$t/hold.out")
	r1=$(cat "$t/w.out")
	if [ -n "$r1" ]; then echo $((r1 - r0)) >>"$3"; else echo "$tool" >>"$t/2.failed"; fi
}
: >"$t/ev2"
for ((i = 0; i < N2; i++)); do
	if ((i % 2)); then
		release_sample flock "$t/2b.lock" "$t/2b"; release_sample rl "$t/2a.lock" "$t/2a"
	else
		release_sample rl "$t/2a.lock" "$t/2a"; release_sample flock "$t/2b.lock" "$t/2b"
	fi
done
row 2 "release → waiter's command starts (\`-w\`)" runnerlock "$t/2a" "$t/2b" 1000000 ms 1.5 - \
	"$(failed_note 2)"

# ---- row 3: kill -9 of the holder to the next command --------------------
say "row 3: kill -9 of the holder to the next run, $N3 each"
kill_sample() { # TOOL LOCK OUT
	local tool=$1 lockf=$2 wp ino child r0 r1
	rm -f "$t/w.out"
	case $tool in
	rl) spawn "$rl" run --lock "$lockf" --log "$t/ev3" -- sleep 30 ;;
	rlgc) spawn "$rl" run --lock "$lockf" --log "$t/ev3" -- sh -c 'sleep 30 & wait' ;;
	flock) spawn flock "$lockf" sleep 30 ;;
	esac
	# Held, and (runnerlock) the start event written: the run is under way.
	until_true test -e "$lockf"
	ino=$(inode "$lockf")
	until_true locked "$ino"
	case $tool in
	rl*) until_true grep -q " pid=$hp " "$t/ev3"
		"$rl" run -w 10s --lock "$lockf" --log "$t/ev3" -- "$stamp" now >"$t/w.out" & ;;
	flock) flock -w 10 "$lockf" "$stamp" now >"$t/w.out" & ;;
	esac
	wp=$!
	until_true has_waiter "$ino"
	sleep 0.02
	if [ "$tool" = flock ]; then
		child=$(cat "/proc/$hp/task/$hp/children")
		r0=$("$stamp" kill "$hp" $child)
	else
		r0=$("$stamp" kill "$hp")
	fi
	wait "$wp" || true
	wait "$wrap" || true
	r1=$(cat "$t/w.out")
	if [ -n "$r1" ]; then echo $((r1 - r0)) >>"$3"; else echo "$tool" >>"$t/3.failed"; fi
}
: >"$t/ev3"
for ((i = 0; i < N3; i++)); do
	kill_sample rl "$t/3a.lock" "$t/3a"
	kill_sample flock "$t/3b.lock" "$t/3b"
	kill_sample rlgc "$t/3c.lock" "$t/3c"
done
# flock(1)'s own case: kill -9 of flock, its child alive.
spawn flock "$t/3d.lock" sleep 30
until_true test -e "$t/3d.lock"
until_true locked "$(inode "$t/3d.lock")"
child=$(cat "/proc/$hp/task/$hp/children")
kill -9 "$hp"
wait "$wrap" || true
if flock -w 2 "$t/3d.lock" true; then
	flock_note="flock(1) killed alone: the lock was free again (unexpected)"
else
	flock_note="flock(1) killed alone never frees it while its child lives (still held after 2 s): flock timed with its child killed too"
fi
kill -9 $child 2>/dev/null || true
n_reclaim=$(grep -c ' reclaim ' "$t/ev3" || true)
row 3 "kill -9 of the holder → next command starts" runnerlock "$t/3a" "$t/3b" 1000000 ms - 50 \
	"$flock_note; $n_reclaim reclaims logged $(failed_note 3)"
row 3g "… the holder's grandchild survives, to reclaim" runnerlock "$t/3c" - 1000000 ms - 50 \
	"flock(1): never (the grandchild keeps the lock)"

# ---- row 4: the hook ------------------------------------------------------
fixture=$root/../shared/fixtures/stop-hook/stop-current.json
[ -f "$fixture" ] || fixture=/work/shared/fixtures/stop-hook/stop-current.json
hook_works() {
	[ -f "$fixture" ] || return 1
	local out
	out=$("$rl" hook --help 2>&1) || return 1
	! grep -q 'not yet built' <<<"$out"
}
if hook_works; then
	say "row 4: hook, $N4 each"
	export XDG_STATE_HOME=$t/state
	mkdir -p "$XDG_STATE_HOME"
	hook_input() { sed "s/\"session_id\": *\"[^\"]*\"/\"session_id\": \"bench-$1\"/" "$fixture"; }
	: >"$t/ev4"
	# 4: the hook starts a long run and returns while it goes on; flock's
	# nearest is `setsid -f flock -n FILE CMD`, which returns once forked.
	for ((i = 0; i < N4; i++)); do
		hook_input "a$i" >"$t/in.json"
		t0=$EPOCHREALTIME
		"$rl" hook --lock "$t/4a.$i.lock" --log "$t/ev4" --runner-log "$t/runner4" -- sleep 30 \
			<"$t/in.json" >/dev/null 2>>"$t/err4" || true
		t1=$EPOCHREALTIME
		echo $(($(us "$t1") - $(us "$t0"))) >>"$t/4a"
		t0=$EPOCHREALTIME
		setsid -f flock -n "$t/4b.$i.lock" sleep 30 </dev/null >/dev/null 2>&1
		t1=$EPOCHREALTIME
		echo $(($(us "$t1") - $(us "$t0"))) >>"$t/4b"
	done
	# End the detached runs: TERM to each supervisor ends its sleep.
	for ((i = 0; i < N4; i++)); do
		for l in "$t/4a.$i.lock" "$t/4b.$i.lock"; do
			for p in $(lock_holders "$l"); do kill "$p" 2>/dev/null || true; done
		done
	done
	n_started=$(grep -c ' start ' "$t/ev4" || true)
	row 4 "hook starts a long run, returns while it goes on" runnerlock "$t/4a" "$t/4b" 1000 ms - 50 \
		"flock(1) column: \`setsid -f flock -n\`; $n_started of $N4 runs started"
	# 4s: while a long run holds the lock, the hook skips.
	: >"$t/ev4s"
	"$rl" run --lock "$t/4s.lock" --log "$t/ev4s" -- sleep 600 &
	hp=$!
	until_true grep -q " pid=$hp " "$t/ev4s"
	flock "$t/4t.lock" sleep 600 &
	until_true test -e "$t/4t.lock"
	until_true locked "$(inode "$t/4t.lock")"
	for ((i = 0; i < N4; i++)); do
		hook_input "s$i" >"$t/in.json"
		t0=$EPOCHREALTIME
		"$rl" hook --lock "$t/4s.lock" --log "$t/ev4s" --runner-log "$t/runner4" -- true \
			<"$t/in.json" >/dev/null 2>>"$t/err4" || true
		t1=$EPOCHREALTIME
		echo $(($(us "$t1") - $(us "$t0"))) >>"$t/4s"
		t0=$EPOCHREALTIME
		flock -n "$t/4t.lock" true || true
		t1=$EPOCHREALTIME
		echo $(($(us "$t1") - $(us "$t0"))) >>"$t/4t"
	done
	n_skip=$(grep -c 'reason="runner-busy"' "$t/ev4s" || true)
	row 4s "hook while a long run holds the lock (skip)" runnerlock "$t/4s" "$t/4t" 1000 ms - 50 \
		"flock(1) column: \`flock -n\` on a held lock; $n_skip of $N4 skips logged"
	kill "$hp" 2>/dev/null || true
	wait "$hp" 2>/dev/null || true
else
	rows+=("| 4 | hook return latency | runnerlock | - | - | - | - | - | - | - | < 50 ms | - | not measured: \`runnerlock hook\` is not built in this tree |")
fi

# ---- row 5: memory while holding -------------------------------------------
say "row 5: memory while holding, $MEM each"
: >"$t/ev5"
pids_a=() pids_b=()
for ((i = 0; i < MEM; i++)); do
	"$rl" run --lock "$t/5a.$i.lock" --log "$t/ev5" -- sleep 5 &
	pids_a+=($!)
	flock "$t/5b.$i.lock" sleep 5 &
	pids_b+=($!)
done
sleep 4
mem() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # kB
for p in "${pids_a[@]}"; do mem "$p" VmRSS >>"$t/5a"; mem "$p" VmHWM >>"$t/5ah"; done
for p in "${pids_b[@]}"; do mem "$p" VmRSS >>"$t/5b"; mem "$p" VmHWM >>"$t/5bh"; done
wait "${pids_a[@]}" "${pids_b[@]}" || true
hwm_a=$(sort -n "$t/5ah" | tail -n 1)
hwm_b=$(sort -n "$t/5bh" | tail -n 1)
row 5 "memory of the holding process during \`run -- sleep 5\` (VmRSS)" runnerlock "$t/5a" "$t/5b" \
	1024 MiB - 10 "VmHWM at most $(awk -v v="$hwm_a" 'BEGIN { printf "%.2f", v / 1024 }') MiB vs flock(1) $(awk -v v="$hwm_b" 'BEGIN { printf "%.2f", v / 1024 }') MiB"

# ---- row 6: throughput -----------------------------------------------------
say "row 6: $CONTENDERS contenders x $ACQ acquisitions, $TRIALS trials each"
: >"$t/ev6"
through() { # TOOL
	local c j t0 t1 pids=()
	t0=$EPOCHREALTIME
	for ((c = 0; c < CONTENDERS; c++)); do
		(
			for ((j = 0; j < ACQ; j++)); do
				case $1 in
				rl) "$rl" run -w 120s --lock "$t/6a.lock" --log "$t/ev6" -- true ;;
				flock) flock -w 120 "$t/6b.lock" true ;;
				esac
			done
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	t1=$EPOCHREALTIME
	echo $(($(us "$t1") - $(us "$t0")))
}
for ((i = 0; i < TRIALS; i++)); do
	if ((i % 2)); then
		through flock >>"$t/6b"; through rl >>"$t/6a"
	else
		through rl >>"$t/6a"; through flock >>"$t/6b"
	fi
done
n_runs=$(grep -c ' done ' "$t/ev6" || true)
row 6 "throughput: $CONTENDERS × $ACQ acquisitions with \`-w\` (wall time)" runnerlock "$t/6a" "$t/6b" \
	1000000 s 1.4 - "$n_runs runs done of $((TRIALS * CONTENDERS * ACQ))"

# ---- the table ---------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "machine: $(nproc) cores, $cpu; Linux $(uname -r); $(go version | cut -d' ' -f3-); $(flock --version | head -n 1); load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ] && rev="$rev (work tree with changes)"
[ -n "${RUNNERLOCK_BIN:-}" ] && rev="RUNNERLOCK_BIN=$RUNNERLOCK_BIN"
echo "command: bash scripts/bench.sh (N=$N TRIALS=$TRIALS MEM=$MEM); runnerlock from $rev"
echo
echo "| # | measurement | subject | n | median | p90 | flock(1) n | median | p90 | ratio | target | | notes |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
printf '%s\n' "${rows[@]}"
