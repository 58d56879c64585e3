package discovery

import (
	"strings"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// codeFormat admits 4 to 8 ASCII digits and nothing else under Python's
// re.match, which HA uses: re.match anchors only the start; "$" also
// matches before a final newline ("1234\n" would pass) and "\d" takes any
// Unicode digit ("١٢٣٤"). "(?![\s\S])" ends the match at the end of the
// string, in Python and in the browser's JavaScript alike ("\Z" is not
// JavaScript).
const codeFormat = `^[0-9]{4,8}(?![\s\S])`

// codeCommandTemplate is the only way a code reaches the bridge: HA renders
// it for LOCK, UNLOCK and OPEN alike, with value = the payload and code =
// the code or None. tojson quotes both as JSON (None is null), so the
// payload is JSON whatever they hold.
const codeCommandTemplate = `{"action": {{ value | tojson }}, "code": {{ code | tojson }}}`

// unlockedTemplate maps the lock state to a binary sensor: only LOCKED is
// off; UNLOCKED and OPEN are on; JAMMED is unknown ("None"), for the relay's
// power is unknown then, like B/N/<door>/energized.
const unlockedTemplate = `{{ 'OFF' if value == 'LOCKED' else ('None' if value == 'JAMMED' else 'ON') }}`

func doorPayload(cfg *config.Config, d *config.Door, info Info) *payload {
	base := mqttapi.Prefix(cfg.MQTT.BaseTopic, cfg.Bridge.ID) + "/" + d.ID + "/"
	uid := DoorID(cfg, d.ID) + "_"
	slug := entitySlug(d.ID)

	model := "fail-safe door (maglock)"
	if d.FailMode == config.FailSecure {
		model = "fail-secure door (electric strike)"
	}
	devName := d.Name
	if devName == "" {
		devName = d.ID
	}

	lock := component{
		Platform:            "lock",
		Name:                nil, // the lock is the door: it takes the device's name
		UniqueID:            uid + "lock",
		DefaultEntityID:     "lock." + slug,
		StateTopic:          base + mqttapi.DoorState,
		JSONAttributesTopic: base + mqttapi.DoorAttributes,
		CommandTopic:        base + mqttapi.DoorSet,
		PayloadLock:         mqttapi.Lock,
		PayloadUnlock:       mqttapi.Unlock,
		// Every door has an unlock_time (default 5 s), so every door can
		// do a momentary OPEN; payload_open is what enables it in HA.
		PayloadOpen:   mqttapi.Open,
		StateLocked:   mqttapi.StateLocked,
		StateUnlocked: mqttapi.StateUnlocked,
		StateOpen:     mqttapi.StateOpen,
		StateJammed:   mqttapi.StateJammed,
		QoS:           1,
		Retain:        noRetain,
	}
	if cfg.EffectiveCodeHash(d) != "" {
		// HA demands a code matching code_format for lock as well as for
		// unlock and open; without a code the payload stays plain.
		lock.CodeFormat = codeFormat
		lock.CommandTemplate = codeCommandTemplate
	}

	p := &payload{
		Device: device{
			Identifiers:      []string{DoorID(cfg, d.ID)},
			Name:             devName,
			Manufacturer:     "doorbridge",
			Model:            model,
			SuggestedArea:    d.Area,
			ViaDevice:        BridgeID(cfg),
			ConfigurationURL: consoleURL(cfg),
		},
		Origin:       makeOrigin(info),
		Availability: makeAvailability(cfg),
		Components: map[string]component{
			"lock": lock,
			"fail_mode": {
				Platform:        "sensor",
				Name:            name("Fail mode"),
				UniqueID:        uid + "fail_mode",
				DefaultEntityID: "sensor." + slug + "_fail_mode",
				DeviceClass:     "enum",
				EntityCategory:  "diagnostic",
				StateTopic:      base + mqttapi.DoorAttributes,
				ValueTemplate:   "{{ value_json.fail_mode }}",
				Options:         failModes,
				QoS:             1,
			},
			"cause": {
				Platform:        "sensor",
				Name:            name("Cause"),
				UniqueID:        uid + "cause",
				DefaultEntityID: "sensor." + slug + "_cause",
				DeviceClass:     "enum",
				StateTopic:      base + mqttapi.DoorCause,
				Options:         causes,
				QoS:             1,
			},
			// Lock power is reported with device class power (on = the
			// lock is energized), not lock: HA's lock class means on =
			// unlocked, and energized means locked on a fail-safe maglock
			// but unlocked on a fail-secure strike.
			"lock_power": {
				Platform:        "binary_sensor",
				Name:            name("Lock power"),
				UniqueID:        uid + "lock_power",
				DefaultEntityID: "binary_sensor." + slug + "_lock_power",
				DeviceClass:     "power",
				EntityCategory:  "diagnostic",
				StateTopic:      base + mqttapi.DoorEnergized,
				PayloadOn:       mqttapi.On,
				PayloadOff:      mqttapi.Off,
				QoS:             1,
			},
			// The lock class (on = unlocked) is served from the lock's own
			// state, which already accounts for the fail mode.
			"unlocked": {
				Platform:        "binary_sensor",
				Name:            name("Unlocked"),
				UniqueID:        uid + "unlocked",
				DefaultEntityID: "binary_sensor." + slug + "_unlocked",
				DeviceClass:     "lock",
				StateTopic:      base + mqttapi.DoorState,
				ValueTemplate:   unlockedTemplate,
				PayloadOn:       mqttapi.On,
				PayloadOff:      mqttapi.Off,
				QoS:             1,
			},
			"event": {
				Platform:        "event",
				Name:            name("Activity"),
				UniqueID:        uid + "event",
				DefaultEntityID: "event." + slug,
				StateTopic:      base + mqttapi.DoorEvent,
				EventTypes:      eventTypes,
				QoS:             1,
			},
		},
	}
	addInputComponents(p.Components, d, base, uid, slug)
	return p
}

// entitySlug turns an id into the object id of an entity id the way HA's
// slugify would: '-' becomes '_', runs of '_' collapse, none at the ends.
func entitySlug(id string) string {
	var b strings.Builder
	b.Grow(len(id))
	for _, c := range []byte(id) {
		if c == '-' || c == '_' {
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			continue
		}
		b.WriteByte(c)
	}
	s := strings.TrimSuffix(b.String(), "_")
	if s == "" {
		return "door"
	}
	return s
}
