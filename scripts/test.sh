#!/usr/bin/env bash
# Runs every test of runnerlock: formatting, vet, the Go tests under the
# race detector, the integration script (real processes, kill -9), the
# model check of the rollout protocol, and a few seconds of each fuzz
# target. This is the README's test command, and what CI runs.
#   FUZZTIME=60s scripts/test.sh   fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then
  echo "gofmt would change:"; echo "$bad"; exit 1
fi
echo "ok"

step "go vet"
go vet ./...
echo "ok"

step "go test -race ./..."
go test -race -count=1 ./...

step "integration_test.sh"
bash ./integration_test.sh

if [ -f scripts/check-model.sh ]; then
  step "model check of the rollout protocol (spin)"
  bash scripts/check-model.sh
fi

step "fuzz targets (${FUZZTIME:=5s} each)"
# Every target runs even when one fails. A failure prints the whole report
# and the input the fuzzer saved, since on CI the clone that holds it is gone.
fuzzfail=0
fuzzout=$(mktemp)
trap 'rm -f "$fuzzout"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "-- $pkg $target"
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >"$fuzzout" 2>&1; then
      tail -n 1 "$fuzzout"
      continue
    fi
    fuzzfail=1
    grep -v '^fuzz: elapsed' "$fuzzout" || true
    saved=$(sed -n 's/.*Failing input written to \(testdata[^ ]*\).*/\1/p' "$fuzzout" | head -n 1)
    if [ -n "$saved" ] && [ -f "$dir/$saved" ]; then
      echo "the failing input ($dir/$saved):"
      cat "$dir/$saved"
    fi
  done
done
if [ "$fuzzfail" != 0 ]; then
  echo "a fuzz target failed; see above"
  exit 1
fi

echo
echo "all tests passed"
