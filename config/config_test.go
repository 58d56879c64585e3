package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	// Every driver type, so that driver options are validated and the known
	// types are listed as the binary lists them.
	_ "github.com/doorbridge/doorbridge/drivers/gpio"
	_ "github.com/doorbridge/doorbridge/drivers/mcp23017"
	_ "github.com/doorbridge/doorbridge/drivers/modbus"
	_ "github.com/doorbridge/doorbridge/drivers/sim"
)

func testdata(name string) string { return filepath.Join("..", "configs", "testdata", name) }

// badConfigs maps each configs/testdata/bad-*.yaml to the exact error
// config.Load returns for it, after "<path>: ". Every message names the file,
// the key and what would be valid.
var badConfigs = map[string]string{
	"bad-fail-mode.yaml": `doors.front.fail_mode: "fail_open" is not a fail mode (valid: fail_safe, fail_secure)`,

	// A door id may not be one of the bridge's own topic leaves (issue 11 item 8).
	"bad-door-id-alarm.yaml": `doors.alarm.id: "alarm" is reserved: doorbridge/test/alarm/... are the bridge's own topics, which the door's would share ` +
		`(reserved ids: alarm, availability, drill, drill_overdue, error, events, hazards, heartbeat, lockdown, notice, power, problem, republish)`,
	"bad-door-id-lockdown.yaml": `doors.lockdown.id: "lockdown" is reserved: doorbridge/test/lockdown/... are the bridge's own topics, which the door's would share ` +
		`(reserved ids: alarm, availability, drill, drill_overdue, error, events, hazards, heartbeat, lockdown, notice, power, problem, republish)`,
	"bad-state-dir-relative.yaml": `bridge.state_dir: "state" is relative: it would depend on the directory doorbridge starts in; ` +
		`give an absolute path (e.g. /var/lib/doorbridge), or leave it empty for the default`,

	"bad-door-no-relay.yaml":    `doors.front.relay: is required: the line that powers the lock, e.g. relay: {driver: sim, channel: "0"}`,
	"bad-unlock-time-zero.yaml": `doors.front.unlock_time: 0s is outside 1s–30s (a momentary unlock is always bounded)`,
	"bad-duplicate-door.yaml":   `doors[1].id: duplicate door id "front"`,
	"bad-duplicate-driver.yaml": `drivers[1].id: duplicate driver id "sim"`,
	"bad-relay-no-driver.yaml":  `doors.front.relay.driver: is required: the id of the driver the line is on (configured: sim)`,
	"bad-relay-driver.yaml":     `doors.front.relay.driver: unknown driver "relays" (configured: sim, hat)`,
	"bad-channel-reused.yaml":   `doors.back.relay.channel: channel "0" of driver "sim" is already used by doors.front.relay`,

	"bad-duration.yaml":        `watchdog.relock_delay: "5 parsecs" is not a duration (write a number and a unit: 500ms, 5s, 1m30s)`,
	"bad-bare-duration.yaml":   `watchdog.heartbeat_interval: 1 is not a duration: add a unit (500ms, 5s, 1m30s)`,
	"bad-driver-duration.yaml": `drivers.hat.debounce: "20 millis" is not a duration (write a number and a unit: 500ms, 5s, 1m30s)`,

	"bad-heartbeat-order.yaml":   `watchdog.heartbeat_timeout: 2s must be larger than watchdog.heartbeat_interval (2s)`,
	"bad-heartbeat-timeout.yaml": `watchdog.heartbeat_timeout: 15s is over 10s; a silent broker must release doors well inside NFPA 72's 10 s`,
	"bad-loop-timeout.yaml":      `watchdog.loop_timeout: 5s must be between 100ms and 2s`,

	"bad-base-topic-wildcard.yaml":       `mqtt.base_topic: "doorbridge/+" holds a wildcard (+ or #); the bridge publishes to it, so it must be a plain topic`,
	"bad-discovery-prefix-wildcard.yaml": `mqtt.discovery_prefix: "homeassistant/#" holds a wildcard (+ or #); the bridge publishes to it, so it must be a plain topic`,

	"bad-unlock-time-short.yaml": `doors.front.unlock_time: 500ms is outside 1s–30s (a momentary unlock is always bounded)`,
	"bad-unlock-time-long.yaml":  `doors.front.unlock_time: 45s is outside 1s–30s (a momentary unlock is always bounded)`,

	"bad-egress-fail-secure.yaml": `doors.exit.mechanical_egress: door "exit" is an egress door and fail_secure: set mechanical_egress: true only if a handle or crash bar always opens it from inside, otherwise use fail_mode: fail_safe (it could trap people)`,

	"bad-unknown-key.yaml":       `watchdgo: unknown key (valid: bridge, mqtt, embedded_broker, http, watchdog, alarms, drivers, doors, codes, power, audit)`,
	"bad-door-key.yaml":          `doors.front.fial_mode: unknown key (valid: id, name, area, fail_mode, relay, unlock_time, egress, mechanical_egress, hardwired_release, power_release, code_hash, contact, rex, lock_sense, rex_time, held_open_time)`,
	"bad-door-area-long.yaml":    `doors.front.area: is 101 characters long: an area name has at most 100 (e.g. Hallway)`,
	"bad-door-area-control.yaml": `doors.front.area: "Hall\tway" holds a control character: an area name is plain text on one line (e.g. Hallway)`,
	"bad-driver-key.yaml":        `drivers.sim.state_fiel: unknown key for driver type "sim" (valid: id, type, state_file, inputs_file, faults_file, create_inputs_file)`,
	"bad-driver-type.yaml":       `drivers.board.type: unknown driver type "modbsu" (known: gpio, mcp23017, modbus, sim)`,

	"bad-bridge-id.yaml":     `bridge.id: "Front Hall" is not a valid id (use lower-case letters, digits, _ and -)`,
	"bad-door-id.yaml":       `doors[0].id: "front/door" is not a valid id (use lower-case letters, digits, _ and -)`,
	"bad-line-pull.yaml":     `doors.front.contact.pull: "high" is not a pull: want up, down or none (leave it out to keep the pin's own bias)`,
	"bad-relay-pull.yaml":    `doors.front.relay.pull: "down": pull applies to input lines only (contact, rex, lock_sense, a power input); leave it out of a relay`,
	"bad-mcp23017-pull.yaml": `doors.front.contact.pull: "down": an input of driver "hat" (mcp23017) cannot be pulled so: want up or none, or leave the key out`,
	"bad-modbus-pull.yaml":   `power[0].pull: "up": an input of driver "board" (modbus) cannot be pulled so: want none, or leave the key out`,
	"bad-power-pull.yaml":    `power[0].pull: "up": pull applies to a power source of type input only (a driver's input line); leave it out of a nut source`,

	"bad-embedded-broker.yaml":      `embedded_broker.listen: "0.0.0.0:1883" is not a loopback address: add embedded_broker.users and an acl to listen beyond loopback (without users the embedded broker has no authentication)`,
	"bad-embedded-broker-name.yaml": `embedded_broker.listen: "127.example.com:1883" is not a loopback address: add embedded_broker.users and an acl to listen beyond loopback (without users the embedded broker has no authentication)`,
	"bad-mqtt-scheme.yaml":          `mqtt.url: "http://broker.lan:1883": scheme must be tcp://, mqtt://, ssl:// or mqtts:// (or leave mqtt.url empty for the embedded broker)`,
	"bad-mqtt-port.yaml":            `mqtt.url: "tcp://broker.lan" has no port (e.g. tcp://broker.lan:1883, or :8883 for TLS)`,
	"bad-password-both.yaml":        `mqtt.password_file: set password or password_file, not both`,

	// Broker links: several brokers, TLS, secrets.
	"bad-mqtt-url-and-urls.yaml":     `mqtt.urls: set url or urls, not both`,
	"bad-mqtt-urls-mixed.yaml":       `mqtt.urls: mixes TLS (ssl://, mqtts://) and plain (tcp://, mqtt://) brokers; use TLS for all of them or none, so that a failover never downgrades the link`,
	"bad-mqtt-urls-duplicate.yaml":   `mqtt.urls[1]: "tcp://broker1.lan:1883" is listed twice (also mqtt.urls[0])`,
	"bad-mqtt-url-credentials.yaml":  `mqtt.url: "tcp://doorbridge:xxxxx@broker.lan:1883" holds credentials; put them in mqtt.username and mqtt.password_file instead (URLs end up in logs)`,
	"bad-mqtt-tls-without-ssl.yaml":  `mqtt.ca_file: is set, but no broker URL uses ssl:// or mqtts://; it would be ignored`,
	"bad-mqtt-tls-embedded.yaml":     `mqtt.insecure_skip_verify: is set, but the bridge reaches its embedded broker over loopback without TLS; remove it (or set mqtt.url to an ssl:// broker)`,
	"bad-mqtt-cert-without-key.yaml": `mqtt.key_file: must be set with mqtt.cert_file (mutual TLS needs the client certificate and its key)`,
	"bad-mqtt-password-type.yaml":    `mqtt.password: (value hidden: it is a secret) is not valid here: want a string`,

	// The embedded broker beyond loopback: users, acl, TLS listener.
	"bad-http-console-mode.yaml":            `http.console: "yes_please" is not a console mode (valid: off, read_only, on)`,
	"bad-http-console-no-hash.yaml":         `http.console_password_hash: must be set with console: on (make one with: doorbridge hash-password); for viewing only, use console: read_only`,
	"bad-http-console-hash.yaml":            `http.console_password_hash: is not a bcrypt hash (make one with: doorbridge hash-password)`,
	"bad-http-console-lan.yaml":             `http.listen: "0.0.0.0:9180" is not loopback: the console password would cross the network in clear text; set http.tls_cert_file and http.tls_key_file, or keep listen on 127.0.0.1`,
	"bad-http-tls-no-key.yaml":              `http.tls_key_file: must be set with http.tls_cert_file (HTTPS needs the certificate and its key)`,
	"bad-http-console-login-read-only.yaml": `http.console: is "read_only", but a console login is configured; set console: on to use it`,
	"bad-http-console-url.yaml":             `http.console_url: "doors.lan:9180" is not an http:// or https:// URL with a host (e.g. https://doors.lan:9180/)`,
	"bad-embedded-tls-listen.yaml":          `embedded_broker.tls_listen: "0.0.0.0:8883" is not a loopback address: add embedded_broker.users and an acl to listen beyond loopback (without users the embedded broker has no authentication)`,
	"bad-embedded-no-listener.yaml":         `embedded_broker.listen: is empty and embedded_broker.socket is not set: the broker would have no listener (e.g. 127.0.0.1:1883)`,
	"bad-embedded-socket-relative.yaml":     `embedded_broker.socket: "mqtt.sock" is not an absolute path (e.g. /run/doorbridge/mqtt.sock)`,
	"bad-embedded-tls-no-cert.yaml":         `embedded_broker.cert_file: must be set with embedded_broker.tls_listen (the broker's certificate)`,
	"bad-embedded-cert-no-tls-listen.yaml":  `embedded_broker.cert_file: is set, but embedded_broker.tls_listen is empty; set tls_listen to serve TLS`,
	"bad-embedded-user-no-password.yaml":    `embedded_broker.users[1].password_hash: set password_hash (bcrypt) or password_file: a user without a password could not log in`,
	"bad-embedded-user-password-both.yaml":  `embedded_broker.users[0].password_file: set password_hash or password_file, not both`,
	"bad-embedded-user-hash.yaml":           `embedded_broker.users[1].password_hash: is not a bcrypt hash (make one with: doorbridge hash-password)`,
	"bad-embedded-user-duplicate.yaml":      `embedded_broker.users[1].username: duplicate user "doorbridge"`,
	"bad-embedded-bridge-user.yaml":         `mqtt.username: "bridge" is not in embedded_broker.users: the bridge logs in to its own broker as mqtt.username`,
	"bad-embedded-bridge-password.yaml":     `mqtt.password_file: must be set (or mqtt.password): the bridge logs in to its embedded broker as "doorbridge"`,
	"bad-embedded-acl-user.yaml":            `embedded_broker.acl[1].username: "homeasistant" is not in embedded_broker.users`,
	"bad-embedded-acl-pattern.yaml":         `embedded_broker.acl[0].subscribe[0]: "doorbridge/#/state" is not a topic pattern (+ stands for one whole level, # for the rest and only at the end)`,
	"bad-embedded-user-no-acl.yaml":         `embedded_broker.users[1].username: user "homeassistant" has no entry in embedded_broker.acl: it could neither publish nor subscribe`,
	"bad-embedded-acl-without-users.yaml":   `embedded_broker.acl: needs embedded_broker.users: without users there are no logins to apply it to`,

	"bad-input-driver.yaml":         `doors.front.contact.driver: unknown driver "inputs" (configured: sim)`,
	"bad-input-channel-reused.yaml": `doors.front.contact.channel: channel "0" of driver "sim" is already used by doors.front.relay`,
	"bad-input-channel-empty.yaml":  `doors.front.rex.channel: must not be empty`,
	"bad-input-key.yaml": strings.Join([]string{
		`doors.front.contact.chanel: unknown key (valid: driver, channel, active_low, pull)`,
		`doors.front.contact.channel: must not be empty`,
	}, "\n"+testdata("bad-input-key.yaml")+": "),
	"bad-rex-time-short.yaml":         `doors.front.rex_time: 10s is outside 30s–10m (an exit button releases a fail-safe door for at least 30 s, NFPA 101 7.2.1.6.2)`,
	"bad-rex-time-long.yaml":          `doors.front.rex_time: 15m0s is outside 30s–10m (an exit button releases a fail-safe door for at least 30 s, NFPA 101 7.2.1.6.2)`,
	"bad-held-open-time.yaml":         `doors.front.held_open_time: 5s is outside 10s–10m (how long a door may stand open before it is reported held open)`,
	"bad-lock-sense-fail-secure.yaml": `doors.store.lock_sense: door "store" is fail_secure: only a fail_safe door's lock sense (a maglock's bond sensor) is supervised; a strike's latch monitor says nothing about its release`,
	"bad-power-input-driver.yaml":     `power[0].driver: unknown driver "ups" (configured: sim)`,
	"bad-power-input-channel.yaml":    `power[0].channel: channel "0" of driver "sim" is already used by doors.front.relay`,
	"bad-power-mqtt-wildcard.yaml":    `power[0].topic: "site/+/mains" has an MQTT wildcard (+ or #): a power source is one exact topic; list one source per topic`,

	"bad-no-doors.yaml":          `doors: no doors configured`,
	"bad-alarm-payloads.yaml":    `alarms[0].payload_on: "1" equals payload_off; alarm and clear must differ`,
	"bad-codes.yaml":             `codes.max_failures: 0 must be at least 1 (the number of wrong codes in a row that locks a keypad out)`,
	"bad-codes-max-lockout.yaml": `codes.max_lockout: -1m0s must not be negative (the longest a repeated lockout lasts; 0s: no escalation beyond codes.lockout)`,
	"bad-code-hash.yaml":         `doors.a.code_hash: is not a bcrypt hash (write the hash, never the code: echo 1234 | doorbridge hash-code)`,

	// Alarm sources beyond ON/OFF: JSON values, + wildcards, heartbeat, availability.
	"bad-alarm-topic-hash.yaml":                 `alarms[0].topic: "zigbee2mqtt/#" holds #; use + (one whole topic level) to match several devices`,
	"bad-alarm-topic-plus.yaml":                 `alarms[0].topic: "zigbee2mqtt/smoke+" has a + inside a topic level; + must stand for a whole level (e.g. zigbee2mqtt/+)`,
	"bad-alarm-json-and-payloads.yaml":          `alarms[0].value_json: set value_json (with on and off) or payload_on and payload_off, not both`,
	"bad-alarm-json-no-off.yaml":                `alarms[0].value_json: "smoke" needs on and off: the JSON values meaning alarm and clear (e.g. on: true, off: false)`,
	"bad-alarm-json-path.yaml":                  `alarms[0].value_json: "$.smoke" is JSONPath; write a gjson path: smoke, alarm.state`,
	"bad-alarm-json-not-scalar.yaml":            `alarms[0].on: [true] is not a JSON scalar: use true, false, a number or a string`,
	"bad-alarm-json-on-equals-off.yaml":         `alarms[0].on: 1 equals off as JSON; alarm and clear must differ`,
	"bad-alarm-on-without-json.yaml":            `alarms[0].on: on and off need value_json (the JSON path of the value); plain payloads use payload_on and payload_off`,
	"bad-alarm-expect.yaml":                     `alarms[0].expect: -2 must be at least 1 (how many matching topics must have reported)`,
	"bad-alarm-sources.yaml":                    `alarms[0].sources[1]: "zigbee2mqtt/hall/smoke" does not match topic "zigbee2mqtt/+": name a topic the detector publishes on (e.g. zigbee2mqtt/kitchen_smoke for zigbee2mqtt/+)`,
	"bad-alarm-max-sources.yaml":                `alarms[0].max_sources: 3 is below the 5 sources the entry expects`,
	"bad-alarm-expect-plain-topic.yaml":         `alarms[0].expect: 3 needs a + wildcard in topic "zigbee2mqtt/kitchen_smoke": a plain topic is one source`,
	"bad-alarm-heartbeat-wildcard.yaml":         `alarms[0].heartbeat_topic: "ha/+/heartbeat" holds a wildcard; name the one topic the source's heartbeat arrives on`,
	"bad-alarm-heartbeat-no-timeout.yaml":       `alarms[0].heartbeat_timeout: must be set with heartbeat_topic: how long the source may stay silent (500ms to 10s)`,
	"bad-alarm-heartbeat-timeout.yaml":          `alarms[0].heartbeat_timeout: 30s is outside 500ms–10s; a silent alarm source must release doors well inside NFPA 72's 10 s`,
	"bad-alarm-heartbeat-timeout-no-topic.yaml": `alarms[0].heartbeat_timeout: 5s needs heartbeat_topic (the topic whose messages prove the source alive)`,
	"bad-alarm-availability-wildcards.yaml":     `alarms[0].availability_topic: "zigbee2mqtt/+/+/availability" has 2 + and topic has 1: use none (one availability for the whole entry, e.g. zigbee2mqtt/bridge/state) or one for each + in topic, standing for the same device`,
	"bad-alarm-availability-no-topic.yaml":      `alarms[0].availability_offline: needs availability_topic`,
	"bad-watchdog-device.yaml":                  `watchdog.device: "watchdog" must be an absolute path (e.g. /dev/watchdog), or empty for none`,

	"bad-audit-size.yaml":       `audit.max_size: 10 is not a size: add a unit (512KB, 10MB, 1GB)`,
	"bad-audit-size-unit.yaml":  `audit.max_size: "10 megs" is not a size (write a number and a unit: 512KB, 10MB, 1GB)`,
	"bad-audit-size-range.yaml": `audit.max_size: 1KB must be between 64KB and 1GB`,
	"bad-audit-max-files.yaml":  `audit.max_files: 0 must be between 1 and 100 (rotated files kept beside audit.file)`,
	"bad-audit-file-dir.yaml":   `audit.file: "/data/" names a directory; name a file in it (e.g. /data/audit.jsonl)`,

	// Several problems in one file: each on its own line, all reported.
	"bad-several.yaml": strings.Join([]string{
		`bridge.id: "Test" is not a valid id (use lower-case letters, digits, _ and -)`,
		`watchdog.heartbeat_timeout: 12s is over 10s; a silent broker must release doors well inside NFPA 72's 10 s`,
		`doors.front.fail_mode: "maglock" is not a fail mode (valid: fail_safe, fail_secure)`,
		`doors.back.relay.channel: channel "0" of driver "sim" is already used by doors.front.relay`,
		`doors.back.unlock_time: 1m0s is outside 1s–30s (a momentary unlock is always bounded)`,
	}, "\n"+testdata("bad-several.yaml")+": "),
	"bad-one-pass.yaml": strings.Join([]string{
		`doors.back.egress: "maybe" is not valid here: want true or false`,
		`watchdgo: unknown key (valid: bridge, mqtt, embedded_broker, http, watchdog, alarms, drivers, doors, codes, power, audit)`,
		`doors.front.unlock_time: 0s is outside 1s–30s (a momentary unlock is always bounded)`,
		`doors.back.relay: is required: the line that powers the lock, e.g. relay: {driver: sim, channel: "0"}`,
	}, "\n"+testdata("bad-one-pass.yaml")+": "),
	"bad-several-keys.yaml": strings.Join([]string{
		`watchdog.heartbeat_interval: 1 is not a duration: add a unit (500ms, 5s, 1m30s)`,
		`watchdog.relock_delay: "soon" is not a duration (write a number and a unit: 500ms, 5s, 1m30s)`,
		`doors.front.egress: "maybe" is not valid here: want true or false`,
		`doors.front.fial_mode: unknown key (valid: id, name, area, fail_mode, relay, unlock_time, egress, mechanical_egress, hardwired_release, power_release, code_hash, contact, rex, lock_sense, rex_time, held_open_time)`,
		`watchdgo: unknown key (valid: bridge, mqtt, embedded_broker, http, watchdog, alarms, drivers, doors, codes, power, audit)`,
		// Validation runs over the rest in the same pass: the misspelt
		// fail_mode leaves the door without one.
		`doors.front.fail_mode: is required: fail_safe (a maglock: unlocked without power) or fail_secure (a strike: locked without power)`,
	}, "\n"+testdata("bad-several-keys.yaml")+": "),
}

func TestLoadBadConfigs(t *testing.T) {
	files, err := filepath.Glob(testdata("bad-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := badConfigs[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected error in badConfigs", f)
		}
	}
	for name, msg := range badConfigs {
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			path := testdata(name)
			cfg, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", path, cfg)
			}
			if want := path + ": " + msg; err.Error() != want {
				t.Errorf("Load(%s) error\n got: %s\nwant: %s", path, err, want)
			}
		})
	}
}

// Every problem is reported, each as a *config.Error naming file and key.
func TestLoadReportsEveryError(t *testing.T) {
	for file, wantKeys := range map[string][]string{
		"bad-several.yaml":      {"bridge.id", "watchdog.heartbeat_timeout", "doors.front.fail_mode", "doors.back.relay.channel", "doors.back.unlock_time"},
		"bad-several-keys.yaml": {"watchdog.heartbeat_interval", "watchdog.relock_delay", "doors.front.egress", "doors.front.fial_mode", "watchdgo", "doors.front.fail_mode"},
	} {
		path := testdata(file)
		_, err := config.Load(path)
		joined, ok := err.(interface{ Unwrap() []error })
		if !ok {
			t.Fatalf("Load(%s) = %v (%T), want errors.Join of every problem", path, err, err)
		}
		var keys []string
		for _, e := range joined.Unwrap() {
			var ce *config.Error
			if !errors.As(e, &ce) {
				t.Fatalf("Load(%s): %v is a %T, want *config.Error", path, e, e)
			}
			if ce.File != path {
				t.Errorf("Load(%s): error %q names file %q", path, e, ce.File)
			}
			keys = append(keys, ce.Key)
		}
		if !slices.Equal(keys, wantKeys) {
			t.Errorf("Load(%s) reported keys %q, want %q", path, keys, wantKeys)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	// DOORBRIDGE_CONFIG names the file; it has no "__" and must not be read
	// as a key (which would be refused as unknown).
	t.Setenv("DOORBRIDGE_CONFIG", "/etc/doorbridge/other.yaml")
	t.Setenv("DOORBRIDGE_MQTT__PASSWORD", "x")
	t.Setenv("DOORBRIDGE_WATCHDOG__RELOCK_DELAY", "2s")
	t.Setenv("DOORBRIDGE_EMBEDDED_BROKER__LISTEN", "[::1]:1884")

	cfg, err := config.Load(testdata("good-minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.Password != "x" {
		t.Errorf("mqtt.password = %q, want %q", cfg.MQTT.Password, "x")
	}
	if pw, err := cfg.MQTTPassword(); err != nil || pw != "x" {
		t.Errorf("MQTTPassword() = %q, %v; want %q", pw, err, "x")
	}
	if cfg.Watchdog.RelockDelay != 2*time.Second {
		t.Errorf("watchdog.relock_delay = %v, want 2s", cfg.Watchdog.RelockDelay)
	}
	if cfg.EmbeddedBroker.Listen != "[::1]:1884" {
		t.Errorf("embedded_broker.listen = %q, want [::1]:1884", cfg.EmbeddedBroker.Listen)
	}
	if got := config.Path(""); got != "/etc/doorbridge/other.yaml" {
		t.Errorf(`Path("") = %q, want $DOORBRIDGE_CONFIG`, got)
	}
	if got := config.Path("my.yaml"); got != "my.yaml" {
		t.Errorf(`Path("my.yaml") = %q, want the flag`, got)
	}
}

// Overrides are as strict as the file: a bad value or an unknown key is
// refused with the key and the environment variable named.
func TestEnvironmentOverridesValidated(t *testing.T) {
	path := testdata("good-minimal.yaml")
	for env, want := range map[string]string{
		"DOORBRIDGE_WATCHDOG__RELOCK_DELAY": `watchdog.relock_delay: "soon" is not a duration (write a number and a unit: 500ms, 5s, 1m30s)`,
		"DOORBRIDGE_MQTT__PASWORD":          `mqtt.pasword: unknown key (valid: url, urls, username, password, password_file, client_id, base_topic, discovery_prefix, birth_topic, ca_file, cert_file, key_file, server_name, insecure_skip_verify)`,
		"DOORBRIDGE_WATCHDOG__LOOP_TIMEOUT": `watchdog.loop_timeout: "soon" is not a duration (write a number and a unit: 500ms, 5s, 1m30s)`,
	} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "soon")
			_, err := config.Load(path)
			want += " (set by the environment variable " + env + ")"
			if err == nil || err.Error() != path+": "+want {
				t.Errorf("with %s=soon: Load error\n got: %v\nwant: %s", env, err, path+": "+want)
			}
		})
	}
}

// A value from the environment that decodes but breaks a rule is named with
// its variable too, beside the file's own errors (all in one pass).
func TestEnvironmentOverrideRuleNamesVariable(t *testing.T) {
	path := testdata("bad-fail-mode.yaml")
	t.Setenv("DOORBRIDGE_WATCHDOG__HEARTBEAT_TIMEOUT", "30s")
	_, err := config.Load(path)
	want := path + `: watchdog.heartbeat_timeout: 30s is over 10s; a silent broker must release doors well inside NFPA 72's 10 s (set by the environment variable DOORBRIDGE_WATCHDOG__HEARTBEAT_TIMEOUT)` +
		"\n" + path + `: doors.front.fail_mode: "fail_open" is not a fail mode (valid: fail_safe, fail_secure)`
	if err == nil || err.Error() != want {
		t.Errorf("Load error\n got: %v\nwant: %s", err, want)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := config.Load(testdata("good-minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def := config.Default()

	wantAlarms := []config.Alarm{{Topic: "doorbridge/alarm", PayloadOn: "ON", PayloadOff: "OFF"}}
	if !reflect.DeepEqual(cfg.Alarms, wantAlarms) {
		t.Errorf("alarms = %+v, want %+v", cfg.Alarms, wantAlarms)
	}
	if d := cfg.Door("front"); d == nil {
		t.Error(`Door("front") = nil`)
	} else {
		if d.UnlockTime != 5*time.Second || config.DefaultUnlockTime != 5*time.Second {
			t.Errorf("unlock_time = %v, want 5s", d.UnlockTime)
		}
		if d.Name != "front" {
			t.Errorf("name = %q, want the id", d.Name)
		}
	}
	w := cfg.Watchdog
	if w.HeartbeatInterval != time.Second || w.HeartbeatTimeout != 3*time.Second ||
		w.RelockDelay != 5*time.Second || !w.AlarmLatch || w.LoopTimeout != 2*time.Second {
		t.Errorf("watchdog = %+v, want heartbeat 1s/3s, relock 5s, alarm_latch true, loop 2s", w)
	}
	if w != def.Watchdog {
		t.Errorf("watchdog = %+v, want config.Default()'s %+v", w, def.Watchdog)
	}
	if got := cfg.ClientID(); got != "doorbridge-lab" {
		t.Errorf("ClientID() = %q, want doorbridge-lab", got)
	}
	if !reflect.DeepEqual(cfg.MQTT, def.MQTT) {
		t.Errorf("mqtt = %+v, want config.Default()'s %+v", cfg.MQTT, def.MQTT)
	}
	if cfg.MQTT.BaseTopic != "doorbridge" || cfg.MQTT.DiscoveryPrefix != "homeassistant" || cfg.MQTT.URL != "" {
		t.Errorf("mqtt = %+v, want base_topic doorbridge, discovery_prefix homeassistant, embedded broker", cfg.MQTT)
	}
	if cfg.EmbeddedBroker.Listen != "127.0.0.1:1883" || cfg.HTTP.Listen != "127.0.0.1:9180" {
		t.Errorf("listen = %q, %q; want 127.0.0.1:1883, 127.0.0.1:9180", cfg.EmbeddedBroker.Listen, cfg.HTTP.Listen)
	}
	if cfg.Codes.MaxFailures != 5 || cfg.Codes.Lockout != time.Minute {
		t.Errorf("codes = %+v, want 5 failures, 1m lockout", cfg.Codes)
	}
	if cfg.File != testdata("good-minimal.yaml") {
		t.Errorf("File = %q", cfg.File)
	}

	// The default alarm topic follows base_topic; a partly given alarm gets
	// the default payloads.
	cfg, err = config.Parse("inline.yaml", []byte(`
mqtt: {base_topic: site1}
drivers: [{id: sim, type: sim}]
doors: [{id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []config.Alarm{config.DefaultAlarm("site1")}; !reflect.DeepEqual(cfg.Alarms, want) || want[0].Topic != "site1/alarm" {
		t.Errorf("alarms = %+v, want %+v on site1/alarm", cfg.Alarms, want)
	}
	if got := cfg.ClientID(); got != "doorbridge-home" {
		t.Errorf("ClientID() = %q, want doorbridge-home (bridge.id defaults to home)", got)
	}
	cfg, err = config.Parse("inline.yaml", []byte(`
alarms: [{topic: panel/fire}]
drivers: [{id: sim, type: sim}]
doors: [{id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []config.Alarm{{Topic: "panel/fire", PayloadOn: "ON", PayloadOff: "OFF"}}; !reflect.DeepEqual(cfg.Alarms, want) {
		t.Errorf("alarms = %+v, want %+v", cfg.Alarms, want)
	}
}

// The demo and every example users copy must pass the validation
// check-config runs.
func TestExampleConfigsLoad(t *testing.T) {
	examples, err := filepath.Glob(filepath.Join("..", "configs", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 3 {
		t.Fatalf("found %d examples in configs/examples, want at least 3", len(examples))
	}
	for _, path := range append([]string{filepath.Join("..", "configs", "demo.yaml")}, examples...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatalf("config.Load:\n%v", err)
			}
			if len(cfg.Doors) == 0 {
				t.Error("no doors")
			}
		})
	}
}

// Door inputs and a power-good input decode as written; rex_time and
// held_open_time default to 30 s, and an input power source is named after
// its line.
func TestDoorInputs(t *testing.T) {
	cfg, err := config.Parse("inline.yaml", []byte(`
drivers: [{id: sim, type: sim}, {id: io, type: sim}]
doors:
  - id: front
    fail_mode: fail_safe
    relay: {driver: sim, channel: "0"}
    contact: {driver: io, channel: "0"}
    rex: {driver: io, channel: "1", active_low: true}
    lock_sense: {driver: io, channel: "2"}
  - id: back
    fail_mode: fail_secure
    relay: {driver: sim, channel: "1"}
    rex_time: 45s
    held_open_time: 2m
power:
  - {type: input, driver: io, channel: "3", active_low: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	front, back := cfg.Door("front"), cfg.Door("back")
	if front.Contact == nil || *front.Contact != (config.Line{Driver: "io", Channel: "0"}) {
		t.Errorf("contact = %+v", front.Contact)
	}
	if front.Rex == nil || *front.Rex != (config.Line{Driver: "io", Channel: "1", ActiveLow: true}) {
		t.Errorf("rex = %+v", front.Rex)
	}
	if front.LockSense == nil || front.LockSense.Channel != "2" {
		t.Errorf("lock_sense = %+v", front.LockSense)
	}
	if back.Contact != nil || back.Rex != nil || back.LockSense != nil {
		t.Errorf("back has inputs it was not given: %+v", back)
	}
	if front.RexTime != config.DefaultRexTime || front.HeldOpenTime != config.DefaultHeldOpenTime ||
		config.DefaultRexTime != 30*time.Second || config.DefaultHeldOpenTime != 30*time.Second {
		t.Errorf("front rex_time %v, held_open_time %v; want the 30 s defaults", front.RexTime, front.HeldOpenTime)
	}
	if back.RexTime != 45*time.Second || back.HeldOpenTime != 2*time.Minute {
		t.Errorf("back rex_time %v, held_open_time %v", back.RexTime, back.HeldOpenTime)
	}
	p := cfg.Power[0]
	if p.Name != "input:io/3" || p.Line() != (config.Line{Driver: "io", Channel: "3", ActiveLow: true}) {
		t.Errorf("power = %+v", p)
	}
}

// A YAML syntax error comes with a hint: a tab, or the indentation.
func TestYAMLSyntaxHint(t *testing.T) {
	dir := t.TempDir()
	for text, hint := range map[string]string{
		"bridge:\n\tid: x\n":              "the file holds a tab; YAML indents with spaces only",
		"bridge:\n  id: x\n    name: y\n": "check the indentation",
	} {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), hint) {
			t.Errorf("%q: %v, want the hint %q", text, err, hint)
		}
	}
}

// An area is trimmed, may be left out, and counts characters, not bytes:
// 100 two-byte letters are a valid area.
func TestDoorArea(t *testing.T) {
	long := strings.Repeat("ü", config.MaxAreaLen)
	cfg, err := config.Parse("inline.yaml", []byte(`
drivers: [{id: sim, type: sim}]
doors:
  - {id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, area: "  Hallway  "}
  - {id: back, fail_mode: fail_safe, relay: {driver: sim, channel: "1"}}
  - {id: side, fail_mode: fail_safe, relay: {driver: sim, channel: "2"}, area: "`+long+`"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"front": "Hallway", "back": "", "side": long} {
		if got := cfg.Door(id).Area; got != want {
			t.Errorf("door %s: area = %q, want %q", id, got, want)
		}
	}
}

// An override of a list entry is refused with its variable named, beside
// the file's own errors in the same pass (koanf made the list a map, and
// the error blamed the file: "front: unknown key").
func TestEnvironmentListOverrideRefused(t *testing.T) {
	path := testdata("bad-fail-mode.yaml")
	t.Setenv("DOORBRIDGE_DOORS__FRONT__UNLOCK_TIME", "0s")
	t.Setenv("DOORBRIDGE_ALARMS__TOPIC", "x")
	_, err := config.Load(path)
	want := path + `: alarms.topic: lists cannot be overridden from the environment (DOORBRIDGE_ALARMS__TOPIC): edit the file` +
		"\n" + path + `: doors.front.unlock_time: lists cannot be overridden from the environment (DOORBRIDGE_DOORS__FRONT__UNLOCK_TIME): edit the file` +
		"\n" + path + `: doors.front.fail_mode: "fail_open" is not a fail mode (valid: fail_safe, fail_secure)`
	if err == nil || err.Error() != want {
		t.Errorf("Load error\n got: %v\nwant: %s", err, want)
	}
}

// A variable that looks like an override but lacks the "__" sets nothing:
// a warning names it and the spelling that would work.
func TestEnvironmentTypoWarned(t *testing.T) {
	t.Setenv("DOORBRIDGE_MQTT_PASSWORD", "x")
	t.Setenv("DOORBRIDGE_CONFIG", testdata("good-minimal.yaml"))
	t.Setenv("DOORBRIDGE_TEST_SOMETHING", "1")
	cfg, err := config.Load(testdata("good-minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "the environment variable DOORBRIDGE_MQTT_PASSWORD sets nothing (a section and its key are separated by a double underscore: DOORBRIDGE_MQTT__PASSWORD)"
	var env []string
	for _, w := range cfg.BrokerWarnings(time.Now()) {
		if strings.Contains(w, "environment variable") {
			env = append(env, w)
		}
	}
	if !slices.Equal(env, []string{want}) {
		t.Errorf("BrokerWarnings about the environment = %q, want [%q]", env, want)
	}
}

// A line's name and label, as check-config and test-door print them.
func TestLineLabel(t *testing.T) {
	l := config.Line{Driver: "hat", Channel: "3"}
	if l.Name() != "hat/3" || l.Label() != "hat/3" {
		t.Errorf("Name %q, Label %q", l.Name(), l.Label())
	}
	l.ActiveLow = true
	if l.Label() != "hat/3 (active low)" {
		t.Errorf("active low: Label %q", l.Label())
	}
}
