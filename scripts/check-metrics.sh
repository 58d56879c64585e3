#!/usr/bin/env bash
# Runs the demo bridge (configs/demo.yaml: embedded broker, simulated relays)
# on free ports, drives an alarm through it, scrapes /metrics and checks the
# exposition with `promtool check metrics` (Debian: apt-get install
# prometheus). Then stops it with SIGTERM, as `docker stop` does, and checks
# every relay is off and it exited within the 10 s grace period.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-metrics: $*" >&2; [ -f "${tmp:-}/log" ] && tail -20 "$tmp/log" >&2; exit 1; }
command -v promtool >/dev/null || fail "promtool not found (apt-get install prometheus)"
if command -v curl >/dev/null; then fetch() { curl -fsS "$1"; }
elif command -v wget >/dev/null; then fetch() { wget -qO- "$1"; }
else fail "neither curl nor wget found"; fi

tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return 0; fi
  done
  return 1
}
broker_port="$(free_port)"
http_port="$(free_port)"
[ "$broker_port" != "$http_port" ] || http_port="$(free_port)"

go build -o "$tmp/doorbridge" ./cmd/doorbridge
bin="$tmp/doorbridge"
sed -e "s|127.0.0.1:1883|127.0.0.1:$broker_port|" -e "s|127.0.0.1:9180|127.0.0.1:$http_port|" \
    -e "s|state_file: doorbridge-demo-relays.json|state_file: $tmp/relays.json|" \
    -e "s|inputs_file: doorbridge-demo-inputs.json|inputs_file: $tmp/inputs.json|" configs/demo.yaml > "$tmp/config.yaml"
grep -q "127.0.0.1:$http_port" "$tmp/config.yaml" || fail "configs/demo.yaml no longer listens on 127.0.0.1:9180"
grep -q "state_file: $tmp/relays.json" "$tmp/config.yaml" || fail "configs/demo.yaml's sim state_file is no longer doorbridge-demo-relays.json"
grep -q "inputs_file: $tmp/inputs.json" "$tmp/config.yaml" || fail "configs/demo.yaml's sim inputs_file is no longer doorbridge-demo-inputs.json"
cfg="$tmp/config.yaml"
# The demo keeps its fire release latch in $XDG_STATE_HOME/doorbridge/demo:
# a latch left by an earlier run (this script ends with the alarm on) would
# hold the maglock released. This run gets a state directory of its own.
export XDG_STATE_HOME="$tmp/state"
url="http://127.0.0.1:$http_port"

"$bin" run -c "$cfg" >"$tmp/log" 2>&1 &
pid=$!

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "doorbridge exited while waiting for $what"
    [ "$SECONDS" -lt "$deadline" ] || fail "no $what within ${secs}s"
    sleep 0.1
  done
}
metric() { fetch "$url/metrics" | grep -qxF "$1"; }

wait_for "ready (/readyz)" 20 "$bin" healthcheck -url "$url/readyz"
"$bin" alarm off -c "$cfg" >/dev/null
wait_for "maglock locked" 20 metric 'doorbridge_lock_energized{door="front"} 1'
"$bin" alarm on -c "$cfg" >/dev/null
wait_for "release on alarm" 10 metric 'doorbridge_lock_energized{door="front"} 0'

fetch "$url/metrics" > "$tmp/metrics.txt"
echo "==> promtool check metrics ($(grep -c '^doorbridge_' "$tmp/metrics.txt") doorbridge samples)"
promtool check metrics < "$tmp/metrics.txt" || fail "promtool check metrics found problems"
for name in doorbridge_build_info doorbridge_hazard_duration_seconds_bucket doorbridge_hazard_release_seconds_bucket \
            doorbridge_commands_rejected_total doorbridge_mqtt_connects_total doorbridge_heartbeat_rtt_seconds_bucket \
            doorbridge_hazard_active doorbridge_lock_energized doorbridge_door_locked doorbridge_audit_file_dropped_total; do
  grep -q "^$name" "$tmp/metrics.txt" || fail "/metrics lacks $name"
done
grep -qx 'doorbridge_hazard_release_seconds_count [1-9][0-9]*' "$tmp/metrics.txt" || fail "the alarm's release was not timed"

# SIGTERM, as docker stop sends it.
start=$(date +%s%N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 0 ] || fail "doorbridge exited with $rc after SIGTERM"
[ "$ms" -lt 10000 ] || fail "doorbridge took ${ms} ms to stop; docker stop kills it after 10 s"
[ -s "$tmp/relays.json" ] || fail "the sim relays' state file $tmp/relays.json is missing or empty"
grep -q true "$tmp/relays.json" && fail "a relay is still on after SIGTERM: $(cat "$tmp/relays.json")"
echo "==> SIGTERM: exited 0 in ${ms} ms, every relay off: $(cat "$tmp/relays.json")"
echo "check-metrics: ok"
