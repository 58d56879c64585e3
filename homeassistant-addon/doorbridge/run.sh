#!/usr/bin/with-contenv bashio
# shellcheck shell=bash
# The add-on's entry point: the broker and its login from the Mosquitto
# add-on (services: mqtt:need), the doors from the options, then the bridge
# in the foreground (exec: Supervisor's SIGTERM reaches it, and it turns
# every relay off before it exits).
set -e
bashio::services.available mqtt || bashio::exit.nok "no MQTT broker: install and start the Mosquitto broker add-on"
host="$(bashio::services mqtt host)"
port="$(bashio::services mqtt port)"
user="$(bashio::services mqtt username)"
umask 077
bashio::services mqtt password > /data/mqtt-password
# /config/doorbridge.yaml, when it exists, is run instead of the options.
config="$(/config-file.sh /config /data/options.json "tcp://${host}:${port}" "$user" /data/mqtt-password /data/config.yaml)"
doorbridge check-config -c "$config" || bashio::exit.nok "$config is not a valid config (see above)"
exec doorbridge run -c "$config" -log-level "$(bashio::config log_level)"
