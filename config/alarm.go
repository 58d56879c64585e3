package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Alarm is one alarm source: a topic (or, with + wildcards, a family of
// topics) whose payload says alarm or clear, and how the source proves it is
// alive.
//
// A payload is read either as a whole (payload_on / payload_off) or, with
// value_json, as JSON: the value at that gjson path is compared with on and
// off. Anything that is neither counts as alarm, and a source with no value
// yet on the current connection counts as alarm too (R5).
type Alarm struct {
	// Topic is where the source publishes its state. A + stands for one
	// whole topic level: every matching topic is a source of its own (one
	// Zigbee2MQTT device each) and the entry is the OR of them.
	Topic string `koanf:"topic"`
	// PayloadOn and PayloadOff are the plain payloads for alarm and clear
	// (default ON and OFF). Not together with ValueJSON.
	PayloadOn  string `koanf:"payload_on"`
	PayloadOff string `koanf:"payload_off"`

	// ValueJSON is a gjson path (smoke, alarm.fire) into a JSON payload.
	// The value there is compared with On and Off as JSON: true is not
	// "true", and 1 equals 1.0. A null value means "no value": alarm.
	ValueJSON string `koanf:"value_json"`
	// On and Off are the JSON values (true/false, a number or a string) that
	// mean alarm and clear; both are required with ValueJSON.
	On  any `koanf:"on"`
	Off any `koanf:"off"`

	// Expect is how many distinct topics matching a wildcard Topic must have
	// reported on the current connection before the entry can be clear
	// (0 means the default, 1). Set it to the number of detectors: one that
	// never reports then keeps the doors released, as an unknown source must.
	Expect int `koanf:"expect"`
	// Sources lists the topics (matching a wildcard Topic) of the real
	// detectors. With it, only these count towards Expect (default: all of
	// them) and a clear from any other topic is ignored; an alarm from any
	// matching topic still counts. Without it, any client that may publish
	// under the wildcard can make up topics that meet Expect.
	Sources []string `koanf:"sources"`
	// MaxSources bounds how many topics under a wildcard Topic are kept as
	// sources on one connection (0: DefaultAlarmMaxSources). Beyond it a new
	// topic is not kept and the entry counts as alarm until the next
	// connection: memory stays bounded, and a flood of made-up topics cannot
	// push a real detector out.
	MaxSources int `koanf:"max_sources"`

	// HeartbeatTopic, when set, is a topic on which any message that is
	// not retained proves the source alive (it may be Topic itself for a
	// source that republishes its state periodically). No heartbeat yet on
	// the current connection, or none for HeartbeatTimeout, raises the
	// alarm_supervision hazard: doors are released, not latched.
	HeartbeatTopic   string        `koanf:"heartbeat_topic"`
	HeartbeatTimeout time.Duration `koanf:"heartbeat_timeout"`

	// AvailabilityTopic is the source's own availability topic (for
	// Zigbee2MQTT, zigbee2mqtt/<device>/availability). With a wildcard
	// Topic it may hold the same number of +, each standing for the same
	// device (zigbee2mqtt/+ goes with zigbee2mqtt/+/availability, and only
	// devices that are sources count), or none: one availability for the
	// whole entry (zigbee2mqtt/bridge/state).
	AvailabilityTopic string `koanf:"availability_topic"`
	// AvailabilityOffline is the payload meaning offline (default
	// "offline"); a JSON object whose "state" is that string means the same
	// (Zigbee2MQTT's {"state": "offline"}).
	AvailabilityOffline string `koanf:"availability_offline"`
	// AvailabilityIsTrouble (default true) raises alarm_supervision while
	// the source is offline or has not said it is online on the current
	// connection. false only logs availability.
	AvailabilityIsTrouble *bool `koanf:"availability_is_trouble"`
}

// Alarm supervision limits.
const (
	// MinAlarmHeartbeatTimeout keeps a heartbeat timeout above the loop's
	// timer resolution and ordinary broker jitter.
	MinAlarmHeartbeatTimeout = 500 * time.Millisecond
	// MaxAlarmHeartbeatTimeout keeps detection inside NFPA 72's 10 s budget
	// from detector to door release (R7).
	MaxAlarmHeartbeatTimeout = 10 * time.Second
	// DefaultAvailabilityOffline is availability_offline's default.
	DefaultAvailabilityOffline = "offline"
	// DefaultAlarmMaxSources is max_sources' default; MaxAlarmMaxSources
	// its largest value.
	DefaultAlarmMaxSources = 100
	MaxAlarmMaxSources     = 10_000
)

// MinSources is how many distinct matching topics (of Sources, when
// listed) must have reported before the entry can be clear: expect, or the
// number of listed sources, at least 1.
func (a *Alarm) MinSources() int {
	if a.Expect == 0 && len(a.Sources) > 0 {
		return len(a.Sources)
	}
	return max(1, a.Expect)
}

// SourceLimit is how many topics under a wildcard are kept as sources:
// max_sources, or its default, and never fewer than the sources listed.
func (a *Alarm) SourceLimit() int {
	n := a.MaxSources
	if n == 0 {
		n = DefaultAlarmMaxSources
	}
	return max(n, len(a.Sources))
}

// AvailabilityTrouble reports whether an offline (or not yet online)
// availability raises alarm_supervision: availability_is_trouble, default true.
func (a *Alarm) AvailabilityTrouble() bool {
	return a.AvailabilityIsTrouble == nil || *a.AvailabilityIsTrouble
}

// AlarmValueJSON returns the canonical JSON text of an alarm value: a bool,
// a string or a number (any Go numeric type; numbers compare by value, so 1
// and 1.0 give the same text). ok is false for anything else (nil, lists,
// maps, NaN, infinities), which cannot be compared with a JSON payload.
func AlarmValueJSON(v any) (s string, ok bool) {
	var f float64
	switch rv := reflect.ValueOf(v); {
	case rv.Kind() == reflect.Bool:
		return strconv.FormatBool(rv.Bool()), true
	case rv.Kind() == reflect.String:
		b, _ := json.Marshal(rv.String())
		return string(b), true
	case rv.CanFloat():
		f = rv.Float()
	case rv.CanInt():
		f = float64(rv.Int())
	case rv.CanUint():
		f = float64(rv.Uint())
	default:
		return "", false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	if f == 0 {
		f = 0 // -0 is 0
	}
	return strconv.FormatFloat(f, 'g', -1, 64), true
}

func (c *Config) applyAlarmDefaults() {
	for i := range c.Alarms {
		a := &c.Alarms[i]
		if a.ValueJSON == "" {
			// With value_json these stay empty: setting them as well is
			// refused by validation.
			if a.PayloadOn == "" {
				a.PayloadOn = "ON"
			}
			if a.PayloadOff == "" {
				a.PayloadOff = "OFF"
			}
		}
		if a.AvailabilityTopic != "" && a.AvailabilityOffline == "" {
			a.AvailabilityOffline = DefaultAvailabilityOffline
		}
	}
}

// topicWildcards counts the + levels of a topic the bridge subscribes to and
// describes the first problem: a #, or a + that is not a whole level.
func topicWildcards(t string) (plus int, problem string) {
	if strings.Contains(t, "#") {
		return 0, fmt.Sprintf("%q holds #; use + (one whole topic level) to match several devices", t)
	}
	for _, level := range strings.Split(t, "/") {
		switch {
		case level == "+":
			plus++
		case strings.Contains(level, "+"):
			return 0, fmt.Sprintf("%q has a + inside a topic level; + must stand for a whole level (e.g. zigbee2mqtt/+)", t)
		}
	}
	return plus, ""
}

func (c *Config) validateAlarms(v *validator) {
	// The default alarm topic is built from mqtt.base_topic: a wildcard there
	// is reported once, at mqtt.base_topic.
	derived := DefaultAlarm(c.MQTT.BaseTopic).Topic
	for i, a := range c.Alarms {
		key := fmt.Sprintf("alarms[%d]", i)
		plus := 0
		switch {
		case a.Topic == "":
			v.add(key+".topic", "must not be empty")
		case a.Topic == derived && strings.ContainsAny(c.MQTT.BaseTopic, "+#"):
			// reported at mqtt.base_topic
		default:
			var problem string
			if plus, problem = topicWildcards(a.Topic); problem != "" {
				v.add(key+".topic", "%s", problem)
			}
		}
		c.validateAlarmValues(v, key, a)
		switch {
		case a.Expect < 0:
			v.add(key+".expect", "%d must be at least 1 (how many matching topics must have reported)", a.Expect)
		case a.Expect > 1 && plus == 0:
			v.add(key+".expect", "%d needs a + wildcard in topic %q: a plain topic is one source", a.Expect, a.Topic)
		}
		validateAlarmSources(v, key, a, plus)
		validateAlarmHeartbeat(v, key, a)
		validateAlarmAvailability(v, key, a, plus)
	}
}

func (c *Config) validateAlarmValues(v *validator, key string, a Alarm) {
	if a.ValueJSON == "" {
		if a.On != nil || a.Off != nil {
			v.add(key+".on", "on and off need value_json (the JSON path of the value); plain payloads use payload_on and payload_off")
		}
		if a.PayloadOn == a.PayloadOff {
			v.add(key+".payload_on", "%q equals payload_off; alarm and clear must differ", a.PayloadOn)
		}
		return
	}
	if a.PayloadOn != "" || a.PayloadOff != "" {
		v.add(key+".value_json", "set value_json (with on and off) or payload_on and payload_off, not both")
	}
	if strings.HasPrefix(a.ValueJSON, "$") {
		v.add(key+".value_json", "%q is JSONPath; write a gjson path: %s, alarm.state", a.ValueJSON, strings.TrimLeft(a.ValueJSON, "$."))
	}
	if a.On == nil || a.Off == nil {
		v.add(key+".value_json", "%q needs on and off: the JSON values meaning alarm and clear (e.g. on: true, off: false)", a.ValueJSON)
		return
	}
	on, okOn := AlarmValueJSON(a.On)
	off, okOff := AlarmValueJSON(a.Off)
	if !okOn {
		v.add(key+".on", "%v is not a JSON scalar: use true, false, a number or a string", a.On)
	}
	if !okOff {
		v.add(key+".off", "%v is not a JSON scalar: use true, false, a number or a string", a.Off)
	}
	if okOn && okOff && on == off {
		v.add(key+".on", "%s equals off as JSON; alarm and clear must differ", on)
	}
}

func validateAlarmSources(v *validator, key string, a Alarm, plus int) {
	switch {
	case a.MaxSources < 0 || a.MaxSources > MaxAlarmMaxSources:
		v.add(key+".max_sources", "%d must be between 1 and %d (0: the default, %d)", a.MaxSources, MaxAlarmMaxSources, DefaultAlarmMaxSources)
	case a.MaxSources > 0 && plus == 0:
		v.add(key+".max_sources", "%d needs a + wildcard in topic %q: a plain topic is one source", a.MaxSources, a.Topic)
	case a.MaxSources > 0 && a.MaxSources < a.MinSources():
		v.add(key+".max_sources", "%d is below the %d sources the entry expects", a.MaxSources, a.MinSources())
	}
	if len(a.Sources) == 0 {
		return
	}
	if plus == 0 {
		v.add(key+".sources", "needs a + wildcard in topic %q: a plain topic is its own one source", a.Topic)
		return
	}
	if a.Expect > len(a.Sources) {
		v.add(key+".expect", "%d is more than the %d listed sources", a.Expect, len(a.Sources))
	}
	seen := map[string]bool{}
	for j, src := range a.Sources {
		skey := fmt.Sprintf("%s.sources[%d]", key, j)
		switch {
		case seen[src]:
			v.add(skey, "duplicate source %q", src)
		case !TopicMatches(a.Topic, src):
			v.add(skey, "%q does not match topic %q: name a topic the detector publishes on (e.g. zigbee2mqtt/kitchen_smoke for zigbee2mqtt/+)", src, a.Topic)
		}
		seen[src] = true
	}
}

// TopicMatches reports whether the concrete topic (no wildcards) matches
// filter, whose + stand for one whole level each.
func TopicMatches(filter, topic string) bool {
	if strings.ContainsAny(topic, "+#") {
		return false
	}
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	if len(f) != len(t) {
		return false
	}
	for i := range f {
		if f[i] != "+" && f[i] != t[i] {
			return false
		}
	}
	return true
}

func validateAlarmHeartbeat(v *validator, key string, a Alarm) {
	switch {
	case a.HeartbeatTopic == "" && a.HeartbeatTimeout != 0:
		v.add(key+".heartbeat_timeout", "%v needs heartbeat_topic (the topic whose messages prove the source alive)", a.HeartbeatTimeout)
	case a.HeartbeatTopic == "":
	case strings.ContainsAny(a.HeartbeatTopic, "+#"):
		v.add(key+".heartbeat_topic", "%q holds a wildcard; name the one topic the source's heartbeat arrives on", a.HeartbeatTopic)
	case a.HeartbeatTimeout == 0:
		v.add(key+".heartbeat_timeout", "must be set with heartbeat_topic: how long the source may stay silent (500ms to 10s)")
	case a.HeartbeatTimeout < MinAlarmHeartbeatTimeout || a.HeartbeatTimeout > MaxAlarmHeartbeatTimeout:
		v.add(key+".heartbeat_timeout", "%v is outside 500ms–10s; a silent alarm source must release doors well inside NFPA 72's 10 s", a.HeartbeatTimeout)
	}
}

func validateAlarmAvailability(v *validator, key string, a Alarm, topicPlus int) {
	if a.AvailabilityTopic == "" {
		if a.AvailabilityOffline != "" {
			v.add(key+".availability_offline", "needs availability_topic")
		}
		if a.AvailabilityIsTrouble != nil {
			v.add(key+".availability_is_trouble", "needs availability_topic")
		}
		return
	}
	plus, problem := topicWildcards(a.AvailabilityTopic)
	switch {
	case problem != "":
		v.add(key+".availability_topic", "%s", problem)
	case plus != 0 && plus != topicPlus:
		v.add(key+".availability_topic", "%q has %d + and topic has %d: use none (one availability for the whole entry, e.g. zigbee2mqtt/bridge/state) or one for each + in topic, standing for the same device", a.AvailabilityTopic, plus, topicPlus)
	}
}
