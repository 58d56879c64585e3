#!/usr/bin/env bash
# Reproduces the README's performance figures.
#
#   scripts/bench.sh                 Go benchmarks of the hot paths, then doorbench
#                                    with the README's settings (about 15 minutes)
#   scripts/bench.sh --go            only the Go benchmarks
#   scripts/bench.sh -- ARGS...      doorbench with these arguments instead
#
# doorbench builds doorbridge from the tree, starts its own mosquitto
# (/usr/sbin/mosquitto; apt-get install mosquitto) and writes bench.json.
# The machine should be otherwise idle: every figure is wall-clock time.
set -euo pipefail
cd "$(dirname "$0")/.."

go_only=false
args=(--doors 1,16,64 --rounds 20 --idle 10s --json bench.json)
while [ $# -gt 0 ]; do
	case "$1" in
	--go) go_only=true; shift ;;
	--) shift; args=("$@"); break ;;
	*) echo "usage: scripts/bench.sh [--go] [-- doorbench args...]" >&2; exit 2 ;;
	esac
done

echo "==== Go benchmarks (ns/op and allocations of the hot paths)"
go test -run '^$' -bench . -benchmem ./bridge ./discovery

if ! $go_only; then
	echo "==== doorbench ${args[*]}"
	go run ./cmd/doorbench "${args[@]}"
fi
