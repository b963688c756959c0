#!/usr/bin/env bash
# check-model.sh - check the rollout model lock/rollout.pml with spin.
#
# Runs every check below in a temporary directory (up to $JOBS at a time,
# default: the number of CPUs), prints one line per check with the states
# explored, the verdict and the seconds it took, and exits non-zero if any
# check does not come out as expected:
#   - the exclusion checks must end with 0 errors after a full search;
#   - the negative controls must find a counterexample to mutual exclusion.
# Installs spin and gcc with apt-get when they are missing.
#
# Environment: JOBS (parallel checks), MODEL_OUT (a directory: keep each
# check's pan output and trail there), MODEL_LONG=1 (add four larger
# checks: about 2 more CPU minutes and up to 2.5 GB of memory each),
# MODEL_MEMLIM (MB per check, default 4096).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=$root/lock/rollout.pml
[[ -r $model ]] || { echo "check-model: $model not found" >&2; exit 1; }

# --- tools -------------------------------------------------------------
missing=()
command -v spin >/dev/null 2>&1 || missing+=(spin)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if ((${#missing[@]})); then
	if [[ $(id -u) -eq 0 ]]; then
		as_root=()
	elif command -v sudo >/dev/null 2>&1; then
		as_root=(sudo)
	else
		echo "check-model: need ${missing[*]}; install them as root" \
			"(apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "check-model: installing ${missing[*]}" >&2
	"${as_root[@]}" apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive "${as_root[@]}" \
		apt-get install -y -qq "${missing[@]}" >&2
fi

# --- how pan is built and run -------------------------------------------
# -DSAFETY: safety properties only (assertions); -DCOLLAPSE: exact state
# compression (no hash compaction or bitstate: the search is exhaustive);
# -DMEMLIM: stop rather than swap (a hit shows up as an incomplete search).
# pan -m: depth bound (the model's depth is about 110); -w26: hash table;
# -E: no invalid-end-state reports, since an excused execution is stopped
# where it stands (see GO in the model).
# The negative controls stop at their first counterexample after a few
# thousand states: they are built without optimisation and with a small hash
# table, which saves most of their time (compiling pan.c with -O2 takes ~4s).
CFLAGS=(-w -DSAFETY -DCOLLAPSE -DMEMLIM=${MODEL_MEMLIM:-4096})
PANFLAGS=(-m10000 -E)
declare -A OPT=([pass]=-O2 [fail]=-O0) HASH=([pass]=-w26 [fail]=-w20)

# name | expectation (pass/fail) | spin -D flags | description
# (runner = runnerlock, steal = legacy hook with pid file and kill -0 steal,
# bare = legacy hook without pid; every check starts from each of: no path,
# a stale directory with a dead pid, an aged one without pid, a lock file;
# "steal window excused": see EXCUSED in the model)
checks=(
	"exclusion|pass|-DMAXKILL=5|exclusion with runnerlock (2 runner, 2 steal, 1 bare, any kills; steal window excused)"
	"exclusion-3r|pass|-DNR=3 -DNL2=1 -DNL1=1 -DMAXKILL=5|exclusion with runnerlock (3 runner, 1 steal, 1 bare, any kills; steal window excused)"
	"grace|pass|-DGRACE -DMAXKILL=5|exclusion with runnerlock, proposed GRACE migration (only the legacy-legacy race excused)"
	"legacy-race|fail|-DLEGACY_ONLY -DMAXKILL=5|negative control: legacy stealers alone (the old steal race)"
	"plain-rename|fail|-DPLAIN_RENAME -DMAXKILL=5|negative control: migration by rmdir and rename"
	"no-recheck|fail|-DNO_RECHECK -DNR=3 -DNL2=1 -DNL1=0 -DMAXKILL=4|negative control: no re-check after judging"
	"steal-race|fail|-DNO_SETTLE -DEXCUSE=1 -DMAXKILL=5|known limit: without settle, runnerlock as the second stealer"
	"settle-limit|fail|-DEXCUSE=2 -DMAXKILL=1|known limit: with settle, runnerlock still as the second stealer"
)
if [[ ${MODEL_LONG:-0} == 1 ]]; then
	checks+=(
		"exclusion-3r2s|pass|-DNR=3 -DNL2=2 -DNL1=0 -DMAXKILL=1|exclusion with runnerlock (3 runner, 2 steal, 1 kill; steal window excused)"
		"exclusion-rounds|pass|-DMAXKILL=5 -DMAXROUND=3|exclusion with runnerlock (2 runner, 2 steal, 1 bare, any kills, 3 decisions each)"
		"exclusion-nosettle|pass|-DNO_SETTLE -DMAXKILL=5|exclusion with runnerlock without settle (2 runner, 2 steal, 1 bare, any kills)"
		"grace-3r2s|pass|-DGRACE -DNR=3 -DNL2=2 -DNL1=0 -DMAXKILL=1|exclusion with runnerlock, GRACE migration (3 runner, 2 steal, 1 kill)"
	)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/check-model.XXXXXX")
# on exit, stop our own checks still running (by their pids) and clean up
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# run_check INDEX: build and run one check; leaves $dir/result
run_check() {
	local i=$1 name expect defs desc dir t0 t1 rc
	IFS='|' read -r name expect defs desc <<<"${checks[$i]}"
	dir=$work/$i-$name
	mkdir -p "$dir"
	cp "$model" "$dir/rollout.pml"
	t0=$(date +%s%N)
	(
		cd "$dir"
		TIMEFORMAT='%U %S'
		# shellcheck disable=SC2086 # defs is a list of -D flags
		{ time {
			spin $defs -a rollout.pml >spin.out 2>&1 &&
			gcc "${OPT[$expect]}" "${CFLAGS[@]}" -o pan pan.c >gcc.out 2>&1 &&
			./pan "${PANFLAGS[@]}" "${HASH[$expect]}" >pan.out 2>&1
		}; } 2>cpu.out
	) && rc=0 || rc=$?
	t1=$(date +%s%N)
	echo "$rc $(( (t1 - t0) / 1000000 ))" >"$dir/result"
}

jobs_max=${JOBS:-$(nproc 2>/dev/null || echo 2)}
start=$(date +%s%N)
echo "check-model: $(spin -V | head -n1); $(gcc --version | head -n1)"
echo "check-model: spin <flags> -a rollout.pml; gcc -O2|-O0 ${CFLAGS[*]} -o pan pan.c; ./pan ${PANFLAGS[*]} -w26|-w20"
for i in "${!checks[@]}"; do
	while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
	run_check "$i" &
done
wait

failed=0
for i in "${!checks[@]}"; do
	IFS='|' read -r name expect defs desc <<<"${checks[$i]}"
	dir=$work/$i-$name
	read -r rc ms <"$dir/result"
	secs=$(awk -v ms="$ms" 'BEGIN { printf "%.1f", ms / 1000 }')
	cpu=$(awk '{ c += $1 + $2 } END { printf "%.1f", c }' "$dir/cpu.out" 2>/dev/null || echo 0)
	cputotal=$(awk -v a="${cputotal:-0}" -v b="$cpu" 'BEGIN { printf "%.1f", a + b }')
	out=$dir/pan.out
	if [[ $rc -ne 0 || ! -s $out ]]; then
		echo "model: $desc: build or run failed (status $rc) FAIL [${secs}s]"
		cat "$dir/spin.out" "$dir/gcc.out" "$out" 2>/dev/null | tail -n 20 | sed 's/^/  /'
		failed=1
		continue
	fi
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | tail -n1)
	states=$(awk '/states, stored/ { printf "%d", $1 }' "$out")
	complete=yes
	grep -q 'Search not completed' "$out" && complete=no
	grep -qi 'max search depth too small\|out of memory\|MEMLIM' "$out" && complete=no
	# a counterexample must break the exclusion assertion itself
	excl=no
	grep -q 'assertion violated.*inR==0' "$out" && excl=yes
	ok=no
	case $expect in
	pass)
		[[ $errors == 0 && $complete == yes ]] && ok=yes
		verdict="$errors errors, $states states ($([[ $complete == yes ]] && echo exhaustive || echo INCOMPLETE))"
		;;
	fail)
		[[ $errors -gt 0 && $excl == yes ]] && ok=yes
		verdict="$errors errors, $states states, $([[ $excl == yes ]] && echo "counterexample to exclusion found" || echo "NO counterexample to exclusion")"
		;;
	esac
	echo "model: $desc: $verdict $([[ $ok == yes ]] && echo ok || echo FAIL) [${secs}s, cpu ${cpu}s]"
	if [[ -n ${MODEL_OUT:-} ]]; then
		mkdir -p "$MODEL_OUT/$name"
		cp "$out" "$MODEL_OUT/$name/"
		[[ -f $dir/rollout.pml.trail ]] && cp "$dir/rollout.pml.trail" "$dir/rollout.pml" "$MODEL_OUT/$name/"
	fi
	if [[ $ok != yes ]]; then
		failed=1
		grep -E 'assertion violated|errors:|Search not completed|depth reached' "$out" | sed 's/^/  /'
		if [[ -f $dir/rollout.pml.trail ]]; then
			echo "  trail (spin -t -p $defs rollout.pml), last steps:"
			# shellcheck disable=SC2086
			(cd "$dir" && spin -t -p $defs rollout.pml 2>&1 | grep -E '^ *[0-9]+:' | tail -n 40 | sed 's/^/    /')
		fi
	fi
done
end=$(date +%s%N)
total=$(awk -v ns="$((end - start))" 'BEGIN { printf "%.1f", ns / 1e9 }')
if ((failed)); then
	echo "model: FAILED (${total}s, cpu ${cputotal}s)"
	exit 1
fi
echo "model: all checks as expected (${total}s, cpu ${cputotal}s)"
