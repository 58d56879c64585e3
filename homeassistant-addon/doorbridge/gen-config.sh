#!/bin/sh
# Maps the add-on's options (/data/options.json) to doorbridge's config.
#
#   gen-config.sh OPTIONS_JSON MQTT_URL MQTT_USERNAME MQTT_PASSWORD_FILE > config.yaml
#
# The output is JSON, which doorbridge's YAML parser reads as it is. The
# state (fire release latch, last drill) goes to /data, which survives
# restarts and updates of the add-on.
#
# relay_driver is the driver of every door that names none ("relays", the id
# earlier versions used); a door's own driver adds a driver with the type as
# its id, so maglocks on the Pi's HAT and a strike on a Modbus board mix.
set -eu
jq --arg url "$2" --arg user "$3" --arg pwfile "$4" '
. as $o
| def driver($t):
    {id: (if $t == $o.relay_driver then "relays" else $t end), type: $t}
    + if $t == "sim" then {state_file: "/data/relays.json"}
      elif $t == "mcp23017" then {bus: ($o.i2c_bus // "/dev/i2c-1")}
        + (if $o.i2c_address then {address: $o.i2c_address} else {} end)
      elif $t == "modbus" then {url: ($o.modbus_url // "")}
        + (if $o.modbus_unit_id then {unit_id: $o.modbus_unit_id} else {} end)
        + (if $o.modbus_speed then {speed: $o.modbus_speed} else {} end)
      else {} end;
  def zigbee: {topic, value_json: (.value // "smoke"), on: true, off: false}
    + (if .expect then {expect} else {} end)
    + (if .availability_topic then {availability_topic} else {} end);
{
  bridge: {id: .bridge_id, name: .bridge_name, state_dir: "/data"},
  mqtt: ({url: $url} + (if $user == "" then {} else {username: $user, password_file: $pwfile} end)),
  http: {listen: "0.0.0.0:9180"},
  watchdog: {alarm_latch: .alarm_latch},
  alarms: ([{topic: .alarm_topic, payload_on: "ON", payload_off: "OFF"}]
           + [(.zigbee_alarms // [])[] | zigbee]),
  drivers: ([.relay_driver] + [.doors[] | .driver // empty | select(. != $o.relay_driver)]
            | reduce .[] as $t ([]; if index([$t]) then . else . + [$t] end)
            | map(driver(.))),
  power: (if .nut_ups then [{type: "nut", host: (.nut_host // "a0d7b954-nut"), ups: .nut_ups}] else [] end),
  doors: [.doors[] | {id, name, fail_mode,
                      relay: {driver: (if (.driver // $o.relay_driver) == $o.relay_driver then "relays" else .driver end),
                              channel, active_low: (.active_low // false)}}
                     + (if .egress then {egress: true} else {} end)]
}' "$1"
