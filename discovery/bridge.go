package discovery

import (
	"net"
	"net/url"
	"strings"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/mqttapi"
)

func bridgePayload(cfg *config.Config, info Info) *payload {
	base := mqttapi.Prefix(cfg.MQTT.BaseTopic, cfg.Bridge.ID) + "/"
	id := BridgeID(cfg)
	uid := id + "_"
	// Entity ids are slugs: "site-1" becomes "site_1" in HA, so say so.
	slug := entitySlug(legacyBridgeID(cfg))
	devName := cfg.Bridge.Name
	if devName == "" {
		devName = cfg.Bridge.ID
	}
	binary := func(key, entityName, class, topic string) component {
		return component{
			Platform:        "binary_sensor",
			Name:            name(entityName),
			UniqueID:        uid + key,
			DefaultEntityID: "binary_sensor." + slug + "_" + key,
			DeviceClass:     class,
			StateTopic:      base + topic,
			PayloadOn:       mqttapi.On,
			PayloadOff:      mqttapi.Off,
			QoS:             1,
		}
	}
	p := &payload{
		Device: device{
			Identifiers:      []string{id},
			Name:             devName,
			Manufacturer:     "doorbridge",
			Model:            "door-lock bridge",
			SWVersion:        info.Version,
			ConfigurationURL: consoleURL(cfg),
		},
		Origin:       makeOrigin(info),
		Availability: makeAvailability(cfg),
		Components: map[string]component{
			"fire_alarm": binary("fire_alarm", "Fire alarm", "smoke", mqttapi.AlarmState),
			"problem":    binary("problem", "Problem", "problem", mqttapi.ProblemState),
			// Latched: the fire release holds until someone resets it. That
			// needs attention, so problem (on = problem), not safety, whose
			// "unsafe" would read wrongly while doors are released for a fire.
			"fire_release_latched": binary("fire_release_latched", "Fire release latched", "problem", mqttapi.AlarmLatched),
			// R20: no alarm has released the fail-safe doors in 31 days.
			// Not diagnostic: it asks the owner to act, like problem.
			"drill_overdue": binary("drill_overdue", "Release drill overdue", "problem", mqttapi.DrillOverdue),
			"last_drill": {
				Platform:        "sensor",
				Name:            name("Last release drill"),
				UniqueID:        uid + "last_drill",
				DefaultEntityID: "sensor." + slug + "_last_drill",
				DeviceClass:     "timestamp",
				EntityCategory:  "diagnostic",
				StateTopic:      base + mqttapi.DrillLast,
				QoS:             1,
			},
			"lockdown": {
				Platform:        "switch",
				Name:            name("Lockdown"),
				UniqueID:        uid + "lockdown",
				DefaultEntityID: "switch." + slug + "_lockdown",
				Icon:            "mdi:shield-lock",
				StateTopic:      base + mqttapi.LockdownState,
				CommandTopic:    base + mqttapi.LockdownSet,
				PayloadOn:       mqttapi.On,
				PayloadOff:      mqttapi.Off,
				QoS:             1,
				Retain:          noRetain,
			},
			"reset_fire_release": {
				Platform:        "button",
				Name:            name("Reset fire release"),
				UniqueID:        uid + "reset_fire_release",
				DefaultEntityID: "button." + slug + "_reset_fire_release",
				Icon:            "mdi:restore",
				CommandTopic:    base + mqttapi.AlarmReset,
				PayloadPress:    mqttapi.Reset,
				QoS:             1,
				Retain:          noRetain,
			},
			// Republish is maintenance, not configuration: diagnostic.
			"republish": {
				Platform:        "button",
				Name:            name("Republish"),
				UniqueID:        uid + "republish",
				DefaultEntityID: "button." + slug + "_republish",
				EntityCategory:  "diagnostic",
				Icon:            "mdi:refresh",
				CommandTopic:    base + mqttapi.Republish,
				PayloadPress:    mqttapi.Press,
				QoS:             1,
				Retain:          noRetain,
			},
			"notice": {
				Platform:        "sensor",
				Name:            name("Notice"),
				UniqueID:        uid + "notice",
				DefaultEntityID: "sensor." + slug + "_notice",
				EntityCategory:  "diagnostic",
				Icon:            "mdi:message-alert-outline",
				StateTopic:      base + mqttapi.Notice,
				QoS:             1,
			},
		},
	}
	// Why the alarm is on (1 of 3 expected detectors reported...).
	fire := p.Components["fire_alarm"]
	fire.JSONAttributesTopic = base + mqttapi.AlarmAttrs
	p.Components["fire_alarm"] = fire
	if len(cfg.Power) > 0 {
		// Without a power source nothing reports mains: the entity
		// would stay unknown forever.
		p.Components["power"] = binary("power", "Power", "power", mqttapi.PowerState)
	}
	return p
}

func makeOrigin(info Info) origin {
	o := origin{Name: "doorbridge", SWVersion: info.Version}
	if validSupportURL(info.SupportURL) {
		o.SupportURL = info.SupportURL
	}
	return o
}

// consoleURL is the web console's address, when HA accepts it. A console
// on loopback is linked only by its http.console_url: HA's link opens on
// the person's own device, where 127.0.0.1 is not the bridge.
func consoleURL(cfg *config.Config) string {
	if cfg.HTTP.ConsoleURL == "" && loopbackListen(cfg.HTTP.Listen) {
		return ""
	}
	if u := cfg.HTTP.PublicConsoleURL(); validSupportURL(u) {
		return u
	}
	return ""
}

func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// validSupportURL mirrors HA's cv.configuration_url: an http(s) URL with a
// host, or a homeassistant:// path. HA drops the payload for anything else.
func validSupportURL(s string) bool {
	if strings.HasPrefix(s, "homeassistant://") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func makeAvailability(cfg *config.Config) []availability {
	return []availability{{
		Topic:               mqttapi.Prefix(cfg.MQTT.BaseTopic, cfg.Bridge.ID) + "/" + mqttapi.Availability,
		PayloadAvailable:    mqttapi.Online,
		PayloadNotAvailable: mqttapi.Offline,
	}}
}
