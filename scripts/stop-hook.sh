#!/bin/sh
# stop-hook.sh: the command an agent's Stop hook configuration calls. It
# passes the hook's JSON event (stdin) to `runnerlock hook`, which starts
# the pipeline detached under the lock and returns at once, or skips.
#
#   RUNNERLOCK_BIN          the binary (default: runnerlock on PATH, else
#                           ./runnerlock at the root of this repository)
#   RUNNERLOCK_PIPELINE     the pipeline, a command line for sh -c (default:
#                           scripts/draft.sh, a sample)
#   RUNNERLOCK_LOCK         the lock path (default /tmp/buildbench-runner.lock)
#   RUNNERLOCK_LOG          the event log (default: events.log in the state
#                           directory, $XDG_STATE_HOME/runnerlock or
#                           ~/.local/state/runnerlock)
#   RUNNERLOCK_RUNNER_LOG   the pipeline's output (default: runner.log there)
#   RUNNERLOCK_SKIPPED_LOG  also log every skip here (default: none)
#   RUNNERLOCK_TIMEOUT      the run's budget (default 30m)
#   RUNNERLOCK_STUCK_AFTER  warn the agent when a run holds longer (default 30m)
#   RUNNERLOCK_ONCE         1: one run per session that ended with done
#
# Arguments are passed to `runnerlock hook` before the "--".
#
# Exit statuses are runnerlock hook's (0 started or skipped, 1 bad input,
# ...), except that 2, which would keep the agent from stopping, becomes 1:
# Go exits 2 on a crash. That is why the binary runs as a child here, not
# with exec.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

if [ -n "${RUNNERLOCK_BIN:-}" ]; then
	bin=$RUNNERLOCK_BIN
elif bin=$(command -v runnerlock 2>/dev/null); then
	:
elif [ -x "$repo/runnerlock" ]; then
	bin=$repo/runnerlock
else
	echo "stop-hook.sh: error: runnerlock not found: set RUNNERLOCK_BIN, put it on PATH," \
		"or build it with scripts/build.sh in $repo" >&2
	exit 1
fi

RUNNERLOCK_LOCK=${RUNNERLOCK_LOCK:-/tmp/buildbench-runner.lock}
export RUNNERLOCK_LOCK
if [ -n "${RUNNERLOCK_LOG:-}" ]; then
	export RUNNERLOCK_LOG
fi

if [ -n "${RUNNERLOCK_RUNNER_LOG:-}" ]; then
	set -- "$@" --runner-log "$RUNNERLOCK_RUNNER_LOG"
fi
if [ -n "${RUNNERLOCK_SKIPPED_LOG:-}" ]; then
	set -- "$@" --skipped-log "$RUNNERLOCK_SKIPPED_LOG"
fi
if [ -n "${RUNNERLOCK_TIMEOUT:-}" ]; then
	set -- "$@" --timeout "$RUNNERLOCK_TIMEOUT"
fi
if [ -n "${RUNNERLOCK_STUCK_AFTER:-}" ]; then
	set -- "$@" --stuck-after "$RUNNERLOCK_STUCK_AFTER"
fi
case ${RUNNERLOCK_ONCE:-} in
1 | true | yes) set -- "$@" --once ;;
esac

if [ -n "${RUNNERLOCK_PIPELINE:-}" ]; then
	"$bin" hook "$@" -- /bin/sh -c "$RUNNERLOCK_PIPELINE"
else
	"$bin" hook "$@" -- "$here/draft.sh"
fi
status=$?
if [ "$status" -eq 2 ]; then
	status=1
fi
exit "$status"
