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
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "-- $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tail -n 2
  done
done

echo
echo "all tests passed"
