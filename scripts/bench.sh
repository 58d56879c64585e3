#!/usr/bin/env bash
# Reproduces the README's performance figures.
#
#   scripts/bench.sh                 Go benchmarks of the hot paths, then doorbench
#                                    with the README's settings (about 25 minutes)
#   scripts/bench.sh --go            only the Go benchmarks
#   scripts/bench.sh --doorbench     only doorbench, with the README's settings
#   scripts/bench.sh -- ARGS...      doorbench with these arguments instead
#
# doorbench builds doorbridge from the tree, starts its own mosquitto
# (/usr/sbin/mosquitto; apt-get install mosquitto) and writes bench.json.
# The headline broker is a stock mosquitto (what users run: Debian's
# package, the Home Assistant add-on, the eclipse-mosquitto image); the same
# mosquitto with set_tcp_nodelay and the embedded broker are measured after it.
# The machine should be otherwise idle: every figure is wall-clock time
# (`uptime` is printed before and after: a load average well above 0 means
# the tails are the neighbours').
set -euo pipefail
cd "$(dirname "$0")/.."

go_bench=true
doorbench=true
args=(--broker mosquitto,mosquitto-nodelay,embedded --doors 4,64,256 --rounds 20 --idle 30s
	--commands 1000 --command-gap 20ms --paho-clients 7 --json bench.json)
while [ $# -gt 0 ]; do
	case "$1" in
	--go) doorbench=false; shift ;;
	--doorbench) go_bench=false; shift ;;
	--) shift; args=("$@"); break ;;
	*) echo "usage: scripts/bench.sh [--go | --doorbench] [-- doorbench args...]" >&2; exit 2 ;;
	esac
done

if $go_bench; then
	echo "==== Go benchmarks (ns/op and allocations of the hot paths)"
	go test -run '^$' -bench . -benchmem ./bridge ./discovery
fi

if $doorbench; then
	echo "==== doorbench ${args[*]}"
	echo "load before: $(uptime)"
	go run ./cmd/doorbench "${args[@]}"
	echo "load after: $(uptime)"
fi
