#!/usr/bin/env bash
# legacy-hook.sh - a hook in the style of the pre-runnerlock Stop hooks, for
# testing a mixed fleet during a rollout. It is NOT a lock to use: it keeps
# the legacy flaws on purpose (a kill -9 leaves the directory behind, and
# the steal below races with another stealer).
#
#   legacy-hook.sh [--form1] [--lock PATH] [--] CMD [ARG...]
#
# Form 2 (the default), as the later legacy hooks did it:
#   mkdir PATH, write $$ to PATH/pid, trap 'rm -rf PATH' EXIT, run CMD.
#   When mkdir fails and PATH/pid names a process that kill -0 says is gone,
#   remove PATH and mkdir once more (the "kill -0 steal"); otherwise skip.
# Form 1 (--form1 or LEGACY_FORM=1), as the first hooks did it:
#   mkdir PATH, trap 'rm -rf PATH' EXIT, run CMD; no pid file, no steal.
#
# There is no flock anywhere. PATH defaults to $LEGACY_LOCK, else
# /tmp/buildbench-runner.lock. Exit status: CMD's, or 75 when it skipped.
set -u

lock=${LEGACY_LOCK:-/tmp/buildbench-runner.lock}
form=${LEGACY_FORM:-2}
while (($#)); do
	case $1 in
	--form1) form=1 ;;
	--lock) lock=$2; shift ;;
	--) shift; break ;;
	*) break ;;
	esac
	shift
done
if (($# == 0)); then
	echo "usage: legacy-hook.sh [--form1] [--lock PATH] [--] CMD [ARG...]" >&2
	exit 64
fi

if ! mkdir "$lock" 2>/dev/null; then
	if [[ $form == 2 && -f $lock/pid ]] &&
		! kill -0 "$(cat "$lock/pid" 2>/dev/null)" 2>/dev/null; then
		rm -rf "$lock"
		mkdir "$lock" 2>/dev/null || { echo "legacy-hook: skip (lost the steal)" >&2; exit 75; }
	else
		echo "legacy-hook: skip (runner busy)" >&2
		exit 75
	fi
fi
if [[ $form == 2 ]]; then
	echo $$ >"$lock/pid"
fi
trap 'rm -rf "$lock"' EXIT
"$@"
