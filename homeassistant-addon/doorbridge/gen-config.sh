#!/bin/sh
# Maps the add-on's options (/data/options.json) to doorbridge's config.
#
#   gen-config.sh OPTIONS_JSON MQTT_URL MQTT_USERNAME MQTT_PASSWORD_FILE > config.yaml
#
# The output is JSON, which doorbridge's YAML parser reads as it is. The
# state (fire release latch, last drill) goes to /data, which survives
# restarts and updates of the add-on.
set -eu
jq --arg url "$2" --arg user "$3" --arg pwfile "$4" '{
  bridge: {id: .bridge_id, name: .bridge_name, state_dir: "/data"},
  mqtt: ({url: $url} + (if $user == "" then {} else {username: $user, password_file: $pwfile} end)),
  http: {listen: "0.0.0.0:9180"},
  watchdog: {alarm_latch: .alarm_latch},
  alarms: [{topic: .alarm_topic, payload_on: "ON", payload_off: "OFF"}],
  drivers: [{id: "relays", type: .relay_driver}
            + (if .relay_driver == "sim" then {state_file: "/data/relays.json"} else {} end)],
  doors: [.doors[] | {id, name, fail_mode,
                      relay: {driver: "relays", channel, active_low: (.active_low // false)}}
                     + (if .egress then {egress: true} else {} end)]
}' "$1"
