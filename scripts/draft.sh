#!/bin/sh
# draft.sh: a sample pipeline for runnerlock's Stop hook. It reads the hook's
# JSON event on stdin (runnerlock hands it over byte for byte), says what it
# would draft for that session, simulates the drafting with a sleep, and
# exits 0. Replace it with the real pipeline through RUNNERLOCK_PIPELINE.
#
#   DRAFT_SECONDS   how long the simulated drafting takes (default 3)
#
# runnerlock also sets RUNNERLOCK_SESSION, RUNNERLOCK_RUN, RUNNERLOCK_FENCE
# (hand it to the CMS so that a write from an older run is rejected) and
# RUNNERLOCK_LOCK. Its output goes to the runner log.
set -eu

input=$(cat)

# field NAME: the string value of a top-level field of the input.
field() {
	if command -v jq >/dev/null 2>&1; then
		printf '%s' "$input" | jq -r --arg k "$1" '.[$k] // empty | strings'
	else
		# Without jq: good enough for the flat strings a Stop event has.
		printf '%s' "$input" | tr -d '\n' |
			sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
	fi
}

session=$(field session_id)
cwd=$(field cwd)
transcript=$(field transcript_path)
event=$(field hook_event_name)

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
echo "$(now) draft.sh: run ${RUNNERLOCK_RUN:-none}, fence ${RUNNERLOCK_FENCE:-none}"
echo "$(now) draft.sh: drafting a post for session ${session:-unknown} (${event:-Stop})"
echo "$(now) draft.sh:   from the transcript ${transcript:-unknown}, in ${cwd:-unknown}"
sleep "${DRAFT_SECONDS:-3}"
echo "$(now) draft.sh: would send the draft to the CMS with fence ${RUNNERLOCK_FENCE:-none}"
