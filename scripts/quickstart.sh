#!/usr/bin/env bash
# quickstart.sh: the README's first command. Builds ./runnerlock, fires the
# Stop hook for real on scripts/sample-stop.json through scripts/stop-hook.sh,
# on a lock path and state directory of its own, and shows what happens: the
# hook returns at once, a second hook skips as runner-busy while the sample
# pipeline (scripts/draft.sh) runs detached, and the run ends with done.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"

demo=/tmp/runnerlock-quickstart
rm -rf "$demo/state" # a fresh log for each try; the lock file itself stays
mkdir -p "$demo"
export RUNNERLOCK_BIN=$repo/runnerlock
export RUNNERLOCK_LOCK=$demo/runner.lock
export XDG_STATE_HOME=$demo/state
export DRAFT_SECONDS=${DRAFT_SECONDS:-3}

echo "== building ./runnerlock"
bash scripts/build.sh runnerlock
./runnerlock --version

echo
echo "== firing the Stop hook (lock $RUNNERLOCK_LOCK)"
t0=$(date +%s%N)
rc=0; scripts/stop-hook.sh < scripts/sample-stop.json || rc=$?
t1=$(date +%s%N)
echo "hook returned with status $rc after $(( (t1 - t0) / 1000000 )) ms; the run goes on detached"

echo
echo "== a second hook while the run holds the lock"
rc=0; sed 's/quickstart-7d2a41c0/quickstart-second/' scripts/sample-stop.json |
  scripts/stop-hook.sh || rc=$?
echo "second hook returned with status $rc (a skip: see runner-busy in the event log)"

echo
echo "== runnerlock status"
./runnerlock status

echo
echo "== waiting for the run to end"
for _ in $(seq 1 $(( DRAFT_SECONDS * 10 + 100 ))); do
  state=$(./runnerlock status --json | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
  [ "$state" = free ] && break
  sleep 0.1
done
./runnerlock status

echo
echo "== event log ($XDG_STATE_HOME/runnerlock/events.log, last lines)"
tail -n 6 "$XDG_STATE_HOME/runnerlock/events.log"
echo
echo "== the pipeline's output ($XDG_STATE_HOME/runnerlock/runner.log, last lines)"
tail -n 5 "$XDG_STATE_HOME/runnerlock/runner.log"
