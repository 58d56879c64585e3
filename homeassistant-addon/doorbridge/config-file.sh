#!/bin/sh
# Picks the config the add-on runs and prints its path:
#
#   config-file.sh CONFIG_DIR OPTIONS_JSON MQTT_URL MQTT_USERNAME MQTT_PASSWORD_FILE OUT
#
# CONFIG_DIR/doorbridge.yaml (the add-on's public folder, map: addon_config)
# is run as it is when it exists: it says what the options cannot (contacts,
# exit buttons, codes, power sources, several boards). Otherwise the options
# become OUT through gen-config.sh.
set -eu
own="$1/doorbridge.yaml"
if [ -f "$own" ]; then
  echo "using $own as it is; the add-on's options (but log_level) are ignored" >&2
  echo "$own"
  exit 0
fi
"$(dirname "$0")/gen-config.sh" "$2" "$3" "$4" "$5" > "$6"
echo "$6"
