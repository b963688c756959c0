#!/usr/bin/env bash
# build.sh [OUTPUT]: builds the runnerlock binary the way it ships (default
# ./runnerlock). Every script here builds through it, so that tests and
# benchmarks measure what operators run.
#   CGO_ENABLED=0               a static binary: no dynamic loader and libc
#                               to map at every start (os/user and net would
#                               otherwise link cgo)
#   -tags urfave_cli_no_docs    leaves out urfave/cli's man-page generator,
#                               whose package initialisers cost ~1.7 ms per start
#   -trimpath -ldflags=-s -w    a smaller binary, no local paths in it
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/runnerlock}
version=$(git -C "$root" describe --always --dirty 2>/dev/null || echo devel)
cd "$root"
CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs \
  -ldflags="-s -w -X main.version=$version" -o "$out" .
