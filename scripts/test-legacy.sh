#!/usr/bin/env bash
# test-legacy.sh - proves, with the real binary and real processes, how
# runnerlock treats legacy mkdir lock directories (DESIGN.md, "Legacy lock
# directories"), and that a fleet mixing legacy hooks and runnerlock stays
# mutually exclusive through a rollout with kill -9 on both sides.
#
#   bash scripts/test-legacy.sh        (from anywhere; builds the binary)
#   RUNNERLOCK_BIN=/path/to/runnerlock bash scripts/test-legacy.sh
#   ROUNDS=100 STEALS=200 bash scripts/test-legacy.sh    (a longer rollout)
#
# Needs bash, coreutils (timeout, stat, touch), util-linux (flock, setsid,
# setpriv) and, to build, go. The other-user case runs only as root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
hook=$here/legacy-hook.sh
ROUNDS=${ROUNDS:-8}
ROUND_SECS=${ROUND_SECS:-2.5}

tmp=$(mktemp -d /tmp/test-legacy.XXXXXX)
chmod 755 "$tmp" # the other-user case runs the binary as nobody
cleanup() {
	local pids
	pids=$(jobs -p)
	[[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

say() { printf '%s\n' "$*"; }
# ok, fail, finish; the steps build on each other, so the first FAIL ends it.
TESTLIB_STOP_ON_FAIL=1
. "$here/testlib.sh"
section() { printf '\n== %s\n' "$*"; }

if [[ -n ${RUNNERLOCK_BIN:-} ]]; then
	cp "$RUNNERLOCK_BIN" "$tmp/runnerlock"
else
	bash "$repo/scripts/build.sh" "$tmp/runnerlock" || fail "go build"
fi
bin=$tmp/runnerlock
chmod 755 "$bin"

now() { # seconds since the epoch, with microseconds
	if [[ -n ${EPOCHREALTIME:-} ]]; then printf '%s\n' "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

dead_pid() { bash -c 'sleep 0 & echo $!; wait'; }

# stale KIND PATH: a legacy directory left by a runner killed with kill -9.
stale() {
	local kind=$1 path=$2
	rm -rf "$path"
	mkdir "$path"
	case $kind in
	dead) dead_pid >"$path/pid" ;;
	reused) # a live process that started after the pid file was written
		sleep 120 &
		echo $! >"$path/pid"
		touch -d "@$(($(date +%s) - 600))" "$path/pid"
		;;
	aged) touch -d '2 hours ago' "$path" ;;
	*) fail "stale: $kind?" ;;
	esac
}
what() {
	case $1 in
	dead) echo "a directory whose pid is dead" ;;
	reused) echo "a directory whose pid was reused" ;;
	aged) echo "an aged directory without a pid" ;;
	esac
}
reason_of() {
	case $1 in
	dead) echo holder-dead ;;
	reused) echo pid-reused ;;
	aged) echo no-pid-aged ;;
	esac
}

is_lock_file() { [[ -f $1 && ! -L $1 && $(stat -c %a "$1") == 600 ]]; }

# wait_for COND...: up to 5 s.
wait_for() {
	local i
	for ((i = 0; i < 500; i++)); do
		"$@" && return 0
		sleep 0.01
	done
	return 1
}

P=$tmp/runner.lock
events=$tmp/events.log
pending=()

section "a stale directory is migrated by the next run and by migrate"
for kind in dead reused aged; do
	reason=$(reason_of $kind)

	stale $kind "$P"
	: >"$events"
	rc=0
	"$bin" --lock "$P" --log "$events" run -- true || rc=$?
	[[ $rc == 0 ]] || fail "run on $(what $kind) exited $rc: $(cat "$events")"
	is_lock_file "$P" || fail "run left $(stat -c %F "$P") at the path, not a 0600 lock file"
	if grep -q "migrate .*reason=\"$reason\"" "$events"; then
		ok "run migrated $(what $kind) ($reason) and ran; migrate event logged"
	else
		ok "run migrated $(what $kind) ($reason) and ran"
		pending+=("run logged no migrate event for $(what $kind)"\
" (supervise.Run must log h.Migrated)")
	fi

	stale $kind "$P"
	: >"$events"
	out=$("$bin" --lock "$P" --log "$events" migrate) || fail "migrate on $(what $kind): $out"
	[[ $out == "$P: migrated ($reason"* ]] || fail "migrate printed: $out"
	is_lock_file "$P" || fail "migrate left $(stat -c %F "$P") at the path"
	grep -q "migrate path=\"$P\" old_pid=[0-9]* reason=\"$reason\"" "$events" ||
		fail "no migrate event: $(cat "$events")"
	ok "migrate migrated $(what $kind): '$out'"
	rm -f "$P"
done
[[ -z $(find "$tmp" -maxdepth 1 -name 'runner.lock.migrate-*') ]] || fail "temporary files left"
ok "no temporary file left beside the path"

section "a live legacy run makes runnerlock skip"
setsid bash "$hook" --lock "$P" -- sleep 60 &
holder=$!
wait_for test -s "$P/pid" || fail "the legacy hook never wrote its pid"
: >"$events"
rc=0
"$bin" --lock "$P" --log "$events" run -- echo SHOULD-NOT-RUN >"$tmp/out" || rc=$?
[[ $rc == 75 ]] || fail "run beside a live legacy run exited $rc"
! grep -q SHOULD-NOT-RUN "$tmp/out" || fail "the command ran"
grep -q "skip .*reason=\"runner-busy\" holder=\"legacy\" holder_pid=$holder" "$events" ||
	fail "no skip event with holder=\"legacy\": $(cat "$events")"
ok "run exited 75 with 'skip reason=\"runner-busy\" holder=\"legacy\" holder_pid=$holder'"
rc=0
out=$("$bin" --lock "$P" migrate) || rc=$?
[[ $rc == 75 && $out == "$P: busy: legacy run alive (pid $holder)" ]] ||
	fail "migrate beside a live legacy run: $rc '$out'"
ok "migrate exited 75: '$out'"
out=$("$bin" --lock "$P" migrate --dry-run) || true
[[ $out == *"busy: legacy run alive (pid $holder)" ]] || fail "migrate --dry-run: '$out'"
json=$("$bin" --lock "$P" status --json)
[[ $json == *'"state":"legacy"'* && $json == *"\"legacy_pid\":$holder"* &&
	$json == *'"legacy_alive":true'* ]] || fail "status --json: $json"
ok "status --json says legacy, legacy_pid $holder, legacy_alive true"
[[ -d $P && $(cat "$P/pid") == "$holder" ]] || fail "the live legacy directory was changed"
ok "the live legacy directory is untouched"

section "migrate --wait finishes soon after the legacy holder's exit"
rm -f "$tmp/t1"
("$bin" --lock "$P" --log "$events" migrate --wait 20s >"$tmp/wait.out" 2>&1
	echo $? >"$tmp/wait.rc"
	now >"$tmp/t1") &
waiter=$!
sleep 0.5
[[ ! -e $tmp/t1 ]] || fail "migrate --wait returned while the holder lived: $(cat "$tmp/wait.out")"
t0=$(now)
kill -9 -- -"$holder" # the whole legacy run, as the OOM killer or a power cut would
wait "$holder" 2>/dev/null || true
wait "$waiter"
lat=$(elapsed "$t0" "$(cat "$tmp/t1")")
[[ $(cat "$tmp/wait.rc") == 0 &&
	$(cat "$tmp/wait.out") == "$P: migrated (holder-dead, old pid $holder)" ]] ||
	fail "migrate --wait: rc $(cat "$tmp/wait.rc"): $(cat "$tmp/wait.out")"
lt "$lat" 2 || fail "migrate --wait took ${lat}s after the holder was killed"
ok "holder killed with kill -9: migrate --wait migrated ${lat}s later" \
	"(bound 2s; includes the 0.5s settle)"
figure_kill=$lat

rm -f "$P" "$tmp/t1"
bash "$hook" --lock "$P" -- bash -c "sleep 1; $(declare -f now); now >'$tmp/t0'" &
holder=$!
wait_for test -s "$P/pid" || fail "the legacy hook never wrote its pid"
("$bin" --lock "$P" migrate --wait 20s >"$tmp/wait.out" 2>&1
	echo $? >"$tmp/wait.rc"
	now >"$tmp/t1") &
waiter=$!
wait "$holder"
wait "$waiter"
lat=$(elapsed "$(cat "$tmp/t0")" "$(cat "$tmp/t1")")
[[ $(cat "$tmp/wait.rc") == 0 && $(cat "$tmp/wait.out") == "$P: free (no file)" ]] ||
	fail "migrate --wait after a clean exit: $(cat "$tmp/wait.out")"
lt "$lat" 2 || fail "migrate --wait took ${lat}s after the holder exited"
ok "holder exited cleanly (its trap removed the directory): migrate --wait said" \
	"'free (no file)' ${lat}s after its critical section ended"
figure_exit=$lat

section "a process of another user counts as alive"
if [[ $(id -u) != 0 ]]; then
	say "skip  not root: cannot run runnerlock as another user here"
else
	nb=$tmp/nobody
	install -d -o 65534 -g 65534 -m 755 "$nb"
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	NP=$nb/runner.lock
	sleep 60 & # root's process: kill(pid, 0) from nobody says EPERM
	rootp=$!
	as_nobody bash -c "mkdir '$NP' && echo $rootp >'$NP/pid'"
	rc=0
	out=$(as_nobody "$bin" --lock "$NP" migrate) || rc=$?
	[[ $rc == 75 && $out == "$NP: busy: legacy run alive (pid $rootp)" ]] ||
		fail "as nobody, a root process's legacy directory: $rc '$out'"
	rc=0
	as_nobody "$bin" --lock "$NP" --log /dev/null run -- true || rc=$?
	[[ $rc == 75 ]] || fail "as nobody, run beside root's legacy run exited $rc"
	ok "as nobody, root's live pid (kill -0: EPERM) is alive: migrate and run exit 75"
	kill -9 "$rootp"
	wait "$rootp" 2>/dev/null || true
	out=$(as_nobody "$bin" --lock "$NP" --log /dev/null migrate) ||
		fail "as nobody, after the holder died: $out"
	[[ $out == "$NP: migrated (holder-dead, old pid $rootp)" ]] || fail "as nobody: '$out'"
	ok "control: once that process is dead, nobody migrates the directory: '$out'"

	# The other way round: a legacy run of nobody's, judged by root.
	rm -rf "$P"
	setpriv --reuid=65534 --regid=65534 --clear-groups sleep 60 &
	nbp=$!
	mkdir "$P"
	echo "$nbp" >"$P/pid"
	rc=0
	out=$("$bin" --lock "$P" migrate) || rc=$?
	[[ $rc == 75 && $out == "$P: busy: legacy run alive (pid $nbp)" ]] ||
		fail "root beside nobody's legacy run: $rc '$out'"
	ok "as root, nobody's live process is alive too: '$out'"
	kill -9 "$nbp"
	wait "$nbp" 2>/dev/null || true
	rm -rf "$P"
fi

section "refusals and dry runs change nothing"
stale dead "$P"
echo keep >"$P/notes"
listing() { stat -c '%i %y' "$1"; ls -liA --time-style=full-iso "$1"; cat "$1"/*; }
before=$(listing "$P")
rc=0
out=$("$bin" --lock "$P" migrate 2>"$tmp/err") || rc=$?
[[ $rc == 73 && $out == "$P: refused: "*'"notes"'* ]] ||
	fail "migrate with an extra file: $rc '$out'"
grep -q '^runnerlock: error: .*notes' "$tmp/err" && grep -q '^runnerlock: hint: ' "$tmp/err" ||
	fail "stderr: $(cat "$tmp/err")"
rc=0
"$bin" --lock "$P" --log /dev/null run -- true 2>/dev/null || rc=$?
[[ $rc == 73 ]] || fail "run with an extra file exited $rc"
[[ $(listing "$P") == "$before" ]] || fail "the refused directory changed"
ok "a directory holding more than pid is refused with 73 by migrate and run; nothing deleted"

stale dead "$P"
before=$(stat -c '%i %Y' "$P" "$P/pid"; cat "$P/pid")
out=$("$bin" --lock "$P" migrate --dry-run) || fail "dry run: $out"
[[ $out == "$P: would migrate (holder-dead, old pid "* ]] || fail "dry run printed '$out'"
[[ $(stat -c '%i %Y' "$P" "$P/pid"; cat "$P/pid") == "$before" ]] ||
	fail "the dry run changed something"
ok "dry run: '$out', and the directory is unchanged"

rc=0
"$bin" --lock "$P" migrate --dry-run --wait 1s 2>/dev/null || rc=$?
[[ $rc == 64 ]] || fail "--dry-run --wait exited $rc; want 64"
ok "conflicting flags exit 64"

section "rollback hands the path back to legacy hooks, only while the lock is free"
rm -rf "$P"
"$bin" --lock "$P" --log /dev/null run -- sleep 2 &
runner=$!
wait_for bash -c "'$bin' --lock '$P' status --json | grep -q '\"state\":\"held\"'" ||
	fail "never held"
rc=0
out=$("$bin" --lock "$P" migrate --rollback) || rc=$?
[[ $rc == 75 && -f $P ]] || fail "rollback of a held lock: $rc '$out'"
ok "held: '$out' (exit 75), the lock file stays"
wait "$runner"
out=$("$bin" --lock "$P" --log "$events" migrate --rollback) || fail "rollback: $out"
[[ ! -e $P ]] || fail "rollback left $P"
ok "free: '$out' (exit 0), the path is gone"
bash "$hook" --lock "$P" -- true || fail "a legacy hook could not take the rolled-back path"
ok "a legacy hook takes the path again"

# ---------------------------------------------------------------------------
section "rollout: legacy hooks beside runnerlock runs, with kill -9 on both sides"
# The detector: every critical section holds a flock on a marker file of its
# own (in a separate directory, unrelated to the lock under test) for as long
# as any of its processes lives, and on entry tries each other marker; one
# still locked means two sections overlap. Of two overlapping sections the
# later one always sees the earlier (each locks its marker before it looks),
# and a section killed with kill -9 lets go of its marker as it dies.
cs=$tmp/cs.sh
cat >"$cs" <<'EOF'
#!/usr/bin/env bash
me=$DET/m/$1.$$
exec 8>"$me"
flock 8
for f in "$DET"/m/*; do
	[[ $f == "$me" ]] && continue
	flock -n -E 99 "$f" true 2>/dev/null
	[[ $? == 99 ]] && echo "$1 ${f##*/}" >>"$DET/overlaps"
done
echo "$1" >>"$DET/runs"
sleep "${CS_TIME:-0.05}"
EOF
chmod 755 "$cs"

legacy_age_flag=()
kill_form1=0
if "$bin" run --help 2>/dev/null | grep -q -- --legacy-max-age; then
	legacy_age_flag=(--legacy-max-age 2s)
	kill_form1=1
fi

# Each contender loops until $stop exists. About a third of its attempts run
# under `timeout -s KILL` with a random delay, which kill -9s the attempt's
# whole process group (a legacy hook with its section; runnerlock, whose
# command the kernel then kills with it) wherever it happens to be.
maybe_kill() {
	if ((${KILLABLE:-1} && RANDOM % 3 == 0)); then
		timeout -s KILL "0.$(printf %03d $((RANDOM % 200 + 5)))" "$@"
	else
		"$@"
	fi
}
runner_loop() { # NAME LOCK
	while [[ ! -e $stop ]]; do
		rc=0
		maybe_kill "$bin" --lock "$2" --log "$DET/events" run "${legacy_age_flag[@]}" -- "$cs" "$1" \
			>/dev/null 2>&1 || rc=$?
		echo "$rc" >>"$DET/rc.runner"
		sleep "0.0$((RANDOM % 6 + 2))" # three of them: give the legacy hooks a chance
	done
}
legacy_loop() { # NAME LOCK FORM
	while [[ ! -e $stop ]]; do
		rc=0
		LEGACY_FORM=$3 maybe_kill bash "$hook" --lock "$2" -- "$cs" "$1" >/dev/null 2>&1 || rc=$?
		echo "$rc" >>"$DET/rc.legacy"
		sleep "0.00$((RANDOM % 10))"
	done
}

# The operator hands the path back to legacy hooks now and then while the
# contenders keep running (migrate --rollback, which only acts while the
# lock is free), and sometimes migrates it: far harsher than a real
# rollback, so that every round has many transitions between a directory
# and a lock file, not one.
operator_loop() { # LOCK
	local out
	while [[ ! -e $stop ]]; do
		sleep "0.$((RANDOM % 2 + 1))"
		if ((RANDOM % 3)); then
			out=$("$bin" --lock "$1" --log /dev/null migrate --rollback 2>/dev/null) || true
			[[ $out == *"rolled back"* ]] && echo rollback >>"$DET/operator"
		else
			out=$("$bin" --lock "$1" --log /dev/null migrate 2>/dev/null) || true
			[[ $out == *": migrated"* ]] && echo migrate >>"$DET/operator"
		fi
	done
}

# round DIR START SEPARATE: one round, in DET=DIR. START is the path's state
# at the start; SEPARATE=1 gives every contender a lock path of its own.
round() {
	export DET=$1
	local start=$2 separate=$3 lp=$1/runner.lock i
	mkdir -p "$DET/m"
	: >"$DET/overlaps"
	: >"$DET/runs"
	: >"$DET/operator"
	stop=$DET/stop
	case $start in
	empty) ;;
	lockfile) "$bin" --lock "$lp" --log /dev/null run -- true ;;
	*) stale "$start" "$lp" ;;
	esac
	local pids=()
	path() { if ((separate)); then echo "$lp.$1"; else echo "$lp"; fi; }
	for i in 1 2 3; do
		runner_loop "R$i" "$(path R$i)" &
		pids+=($!)
	done
	legacy_loop L2 "$(path L2)" 2 &
	pids+=($!)
	KILLABLE=$kill_form1 legacy_loop L1 "$(path L1)" 1 &
	pids+=($!)
	if ((!separate)); then
		operator_loop "$lp" &
		pids+=($!)
	fi
	sleep "$ROUND_SECS"
	touch "$stop"
	wait "${pids[@]}" || true
	# Sections whose runnerlock was killed live on until their sleep ends.
	for f in "$DET"/m/*; do
		[[ -e $f ]] || continue
		flock -w 5 "$f" true || fail "a section outlived its round: $f"
	done
}

section "negative control: contenders on separate lock paths must overlap"
neg=$tmp/neg
round "$neg" empty 1
n_neg=$(wc -l <"$neg/overlaps")
((n_neg > 0)) || fail "the detector saw no overlap among contenders on separate paths"
ok "the detector saw $n_neg overlaps among $(wc -l <"$neg/runs") sections on separate paths"

section "the steal race: a legacy stealer and runnerlock on one stale directory at once"
# The legacy steal is `kill -0 $(cat PATH/pid) || rm -rf PATH; mkdir PATH`.
# A stealer that read the dead pid just before runnerlock migrated removes
# runnerlock's fresh lock file and makes its own directory; runnerlock holds
# a fresh migration for a moment (lock.legacySettle) and checks the path
# before it runs anything. Started together, the two hit that window most
# of the time.
STEALS=${STEALS:-20}
race=$tmp/race
mkdir -p "$race/m"
: >"$race/overlaps"
: >"$race/runs"
for ((i = 0; i < STEALS; i++)); do
	stale dead "$race/runner.lock"
	(sleep "0.00$((RANDOM % 10))"
		DET=$race CS_TIME=0.1 bash "$hook" --lock "$race/runner.lock" -- "$cs" L >/dev/null 2>&1) &
	a=$!
	(sleep "0.00$((RANDOM % 10))"
		DET=$race CS_TIME=0.1 "$bin" --lock "$race/runner.lock" --log /dev/null run -- "$cs" R \
			>/dev/null 2>&1) &
	b=$!
	wait "$a" "$b" || true
done
n_over=$(wc -l <"$race/overlaps")
n_r=$(grep -c R "$race/runs" || true)
n_l=$(grep -c L "$race/runs" || true)
((n_over == 0)) || { cat "$race/overlaps"; fail "$n_over overlaps in $STEALS steal races"; }
((n_r > 0)) || fail "no runnerlock run in $STEALS steal races"
ok "$STEALS steal races: $n_r runnerlock and $n_l legacy sections, 0 overlaps"
# A legacy section here is mostly a stealer that removed runnerlock's fresh
# lock file and won: the window was hit, and the settle caught it.
((n_l > 0)) || say "note  no stealer won this time (the window was not hit); try STEALS=100"
figure_steal="$STEALS races, $n_r runnerlock + $n_l legacy sections, 0 overlaps"

section "rollout rounds"
starts=(empty dead aged reused lockfile)
total_mr=0 total_rb=0 total_mg=0 total_runs=0 total_r=0 total_l=0
total_over=0 total_over_r=0 kills=0 skips_legacy=0
t_start=$(now)
for ((r = 1; r <= ROUNDS; r++)); do
	start=${starts[$(((r - 1) % ${#starts[@]}))]}
	d=$tmp/round.$r
	round "$d" "$start" 0
	runs=$(wc -l <"$d/runs")
	rr=$(grep -c '^R' "$d/runs" || true)
	over=$(wc -l <"$d/overlaps")
	over_r=$(grep -c 'R' "$d/overlaps" || true)
	k=$(cat "$d"/rc.* 2>/dev/null | grep -c '^137$' || true)
	sl=$(grep -c 'skip .*holder="legacy"' "$d/events" 2>/dev/null || true)
	mr=$(grep -c ' migrate ' "$d/events" 2>/dev/null || true)
	total_mr=$((total_mr + mr))
	rb=$(grep -c rollback "$d/operator" || true)
	mg=$(grep -c migrate "$d/operator" || true)
	total_rb=$((total_rb + rb)) total_mg=$((total_mg + mg))
	total_runs=$((total_runs + runs)) total_r=$((total_r + rr)) total_l=$((total_l + runs - rr))
	total_over=$((total_over + over)) total_over_r=$((total_over_r + over_r))
	kills=$((kills + k)) skips_legacy=$((skips_legacy + sl))
	printf '      round %2d from %-8s %3d sections (%3d runnerlock), %2d kill -9, ' "$r" "$start" \
		"$runs" "$rr" "$k"
	printf '%d+%d rollbacks+migrates, %d overlaps\n' "$rb" "$mg" "$over"
	if ((over_r > 0)); then
		say "overlaps involving runnerlock in round $r:"
		cat "$d/overlaps"
		fail "round $r from $start: $over_r overlaps involving a runnerlock run"
	fi
	rm -rf "$d"
done
leftovers=$(find "$tmp" -maxdepth 2 -name 'runner.lock.migrate-*' | wc -l)
((total_r > 0 && total_l > 0)) ||
	fail "the rounds did not mix: $total_r runnerlock, $total_l legacy sections"
((kills > 0)) || fail "no attempt was killed"
ok "$ROUNDS rounds in $(elapsed "$t_start" "$(now)")s: $total_runs sections" \
	"($total_r runnerlock, $total_l legacy), $kills kill -9, $skips_legacy runnerlock skips" \
	"for a legacy holder, $total_mr migrations logged by run, $total_rb rollbacks and" \
	"$total_mg migrations by the operator"
ok "0 overlaps involving a runnerlock run" \
	"($((total_over - total_over_r)) among legacy hooks alone)"
((leftovers == 0)) ||
	say "note  $leftovers temporary names left by runnerlock processes killed mid-migration"
((kill_form1)) || say "note  form-1 hooks were not killed: run has no --legacy-max-age yet, so a" \
	"killed one's directory would block the round for an hour"

section "figures"
say "migrate --wait after kill -9 of the legacy holder: ${figure_kill}s"
say "migrate --wait after the end of a legacy run that exits cleanly: ${figure_exit}s"
say "steal race: $figure_steal"
say "rollout: $ROUNDS rounds, $total_runs sections, $kills kill -9," \
	"0 overlaps involving runnerlock; negative control: $n_neg overlaps"
for p in "${pending[@]}"; do say "PENDING  $p"; done
say
finish test-legacy.sh
