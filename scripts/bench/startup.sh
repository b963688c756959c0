#!/usr/bin/env bash
# startup.sh: where the time of a short `runnerlock run -n -- true` goes.
# Builds variants into a temporary directory and times them interleaved
# (each round runs every variant once, alternating the order), then prints
# the median and p90 of each, the package initialisers that cost most
# (GODEBUG=inittrace=1) and the cost of closing an inotify instance, which
# waits for an SRCU grace period. BENCHMARKS.md explains the figures.
#
#   bash scripts/bench/startup.sh        N=300 rounds by default
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${N:-300}
t=$(mktemp -d "${TMPDIR:-/tmp}/runnerlock-startup.XXXXXX")
trap 'rm -rf "$t"' EXIT

cd "$root"
printf 'package main\n\nfunc main() {}\n' >"$t/empty.go"
CGO_ENABLED=0 go build -o "$t/go-empty" "$t/empty.go"
go build -o "$t/barelock" ./scripts/bench/barelock
go build -o "$t/default" .
CGO_ENABLED=0 go build -o "$t/nocgo" .
go build -tags urfave_cli_no_docs -o "$t/nodocs" .
go build -trimpath -ldflags='-s -w' -o "$t/stripped" .
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -trimpath -ldflags='-s -w' -o "$t/tuned" .
gcc -O2 -o "$t/inotify-close" scripts/bench/inotify_close.c

run() { echo "$t/$1 run -n --lock $t/$1.lock --log $t/$1.log -- true"; }
names=(true flock go-empty barelock version-default version-tuned
	run-default run-nocgo run-nodocs run-stripped run-tuned run-tuned+GODEBUG)
cmds=("/bin/true" "flock -n $t/f.lock true" "$t/go-empty" "$t/barelock $t/b.lock true"
	"$t/default --version" "$t/tuned --version"
	"$(run default)" "$(run nocgo)" "$(run nodocs)" "$(run stripped)" "$(run tuned)"
	"GODEBUG=containermaxprocs=0,updatemaxprocs=0 $(run tuned)")
for ((i = 0; i < N; i++)); do
	for ((k = 0; k < ${#cmds[@]}; k++)); do
		j=$(((i % 2) ? ${#cmds[@]} - 1 - k : k))
		t0=${EPOCHREALTIME/./}
		eval "${cmds[j]}" >/dev/null 2>&1
		t1=${EPOCHREALTIME/./}
		echo $((t1 - t0)) >>"$t/${names[j]}.times"
	done
done
echo "wall time from bash, $N interleaved rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for n in "${names[@]}"; do
	sort -n "$t/$n.times" | awk -v n="$n" '{ v[NR] = $1 } END {
		printf "  %-22s median %6.2f ms   p90 %6.2f ms\n", n, v[int((NR + 1) / 2)] / 1000, v[int(0.9 * NR + 0.99)] / 1000 }'
done

echo "package initialisers of the default build (GODEBUG=inittrace=1, mean of 50 runs, top 6):"
for ((i = 0; i < 50; i++)); do
	GODEBUG=inittrace=1 "$t/default" run -n --lock "$t/it.lock" --log "$t/it.log" -- true 2>&1 |
		grep '^init '
done | awk '{ c[$2] += $5; n[$2]++ } END {
	for (k in c) { s += c[k] / n[k]; printf "  %-40s %.3f ms\n", k, c[k] / n[k] }
	printf "  %-40s %.3f ms\n", "(sum-of-all)", s }' | sort -k2 -rn | head -n 7

touch "$t/watched"
echo "closing an inotify instance with one watch: $("$t/inotify-close" "$t/watched")"
