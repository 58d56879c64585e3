package bridge

import (
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// Topics are the MQTT topics of one bridge, built once from mqttapi's names.
// B = mqtt.base_topic, N = bridge.id.
type Topics struct {
	prefix          string // B/N
	Availability    string // B/N/availability: online/offline, retained; also the last will
	Heartbeat       string // B/N/heartbeat: the bridge's own round-trip probe
	LockdownSet     string // B/N/lockdown/set: ON/OFF
	LockdownState   string // B/N/lockdown/state: ON/OFF, retained
	AlarmState      string // B/N/alarm/state: ON/OFF fire alarm active, retained
	AlarmLatched    string // B/N/alarm/latched: ON/OFF release latched, retained (restores the latch at start)
	AlarmAttrs      string // B/N/alarm/attributes: JSON {"reason": ...}, why the alarm is active; retained
	AlarmReset      string // B/N/alarm/reset: RESET
	PowerState      string // B/N/power/state: ON = mains OK, retained
	ProblemState    string // B/N/problem/state: ON while any hazard is active, retained
	Hazards         string // B/N/hazards: JSON list of active hazards, retained
	Notice          string // B/N/notice: last notice (why a reset was refused...), retained
	Error           string // B/N/error: bridge-level errors (unknown door...), not retained
	Republish       string // B/N/republish: PRESS republishes discovery and state
	Events          string // B/N/events: audit events, not retained
	DrillOverdue    string // B/N/drill_overdue/state: ON when no release drill in 31 days, retained
	DrillLast       string // B/N/drill/last: RFC 3339 time of the last release drill, retained (restores it at start)
	DoorCommandWild string // B/N/+/set: the subscription for door commands
	HAStatus        string // mqtt.birth_topic: Home Assistant's birth message
}

// NewTopics derives every topic from the config; the names are mqttapi's.
func NewTopics(cfg *config.Config) Topics {
	p := mqttapi.Prefix(cfg.MQTT.BaseTopic, cfg.Bridge.ID)
	t := func(leaf string) string { return p + "/" + leaf }
	return Topics{
		prefix:          p,
		Availability:    t(mqttapi.Availability),
		Heartbeat:       t(mqttapi.Heartbeat),
		LockdownSet:     t(mqttapi.LockdownSet),
		LockdownState:   t(mqttapi.LockdownState),
		AlarmState:      t(mqttapi.AlarmState),
		AlarmLatched:    t(mqttapi.AlarmLatched),
		AlarmAttrs:      t(mqttapi.AlarmAttrs),
		AlarmReset:      t(mqttapi.AlarmReset),
		PowerState:      t(mqttapi.PowerState),
		ProblemState:    t(mqttapi.ProblemState),
		Hazards:         t(mqttapi.Hazards),
		Notice:          t(mqttapi.Notice),
		Error:           t(mqttapi.Error),
		Republish:       t(mqttapi.Republish),
		Events:          t(mqttapi.Events),
		DrillOverdue:    t(mqttapi.DrillOverdue),
		DrillLast:       t(mqttapi.DrillLast),
		DoorCommandWild: t("+/" + mqttapi.DoorSet),
		HAStatus:        cfg.MQTT.HABirthTopic(),
	}
}

// DoorTopics are one door's topics.
type DoorTopics struct {
	State      string // B/N/<door>/state: LOCKED, UNLOCKED, OPEN, JAMMED; retained
	Set        string // B/N/<door>/set: LOCK, UNLOCK, OPEN or JSON
	Attributes string // B/N/<door>/attributes: JSON; retained
	Cause      string // B/N/<door>/cause: why the door is in its state; retained
	Energized  string // B/N/<door>/energized: ON/OFF lock power; retained
	Event      string // B/N/<door>/event: JSON {"event_type": ...}; never retained
	Error      string // B/N/<door>/error: rejected commands; not retained
}

// Door returns the topics of door id.
func (t Topics) Door(id string) DoorTopics {
	p := t.prefix + "/" + id + "/"
	return DoorTopics{
		State:      p + mqttapi.DoorState,
		Set:        p + mqttapi.DoorSet,
		Attributes: p + mqttapi.DoorAttributes,
		Cause:      p + mqttapi.DoorCause,
		Energized:  p + mqttapi.DoorEnergized,
		Event:      p + mqttapi.DoorEvent,
		Error:      p + mqttapi.DoorError,
	}
}

// DoorFromCommandTopic returns the door id of a B/N/<door>/set topic.
func (t Topics) DoorFromCommandTopic(topic string) (string, bool) {
	n := len(t.prefix)
	if len(topic) <= n+len("//set") || topic[:n] != t.prefix || topic[n] != '/' || topic[len(topic)-4:] != "/set" {
		return "", false
	}
	id := topic[n+1 : len(topic)-4]
	for i := 0; i < len(id); i++ {
		if id[i] == '/' {
			return "", false
		}
	}
	return id, true
}
