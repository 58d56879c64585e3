package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/doorbridge/doorbridge/config"
)

// alarmValue is what an alarm source last said.
type alarmValue uint8

const (
	alarmUnknown alarmValue = iota // no value yet: counts as alarm (R5)
	alarmOn
	alarmOff
)

func (v alarmValue) String() string {
	switch v {
	case alarmOn:
		return "alarm"
	case alarmOff:
		return "clear"
	}
	return "unknown"
}

// alarmSource is one configured alarm entry and what its sources said on
// the current connection. Every field is reset on a new connection: the
// broker may be a new one, without the retained values (R5).
type alarmSource struct {
	cfg     config.Alarm
	topic   topicPattern
	avail   topicPattern // availability_topic; no levels when unset
	matcher payloadMatcher

	// values holds every concrete topic that is a source of this entry on
	// this connection, and its last value. A plain topic is a source from
	// its first message. Under a wildcard with value_json, a topic becomes
	// a source with its first message that holds the path (or is empty of
	// value: null): other devices that share the wildcard (a lamp on
	// zigbee2mqtt/+) publish other JSON and are not sources. Once a source,
	// a message without the path, or with null, is "no value": alarm.
	values map[string]alarmValue
	// offline holds the last availability per concrete availability topic.
	offline map[string]bool
	// availDropped: an availability was turned away on this connection
	// (beyond max_sources): a new source's may be among them.
	availDropped bool
	// listed holds the configured sources (alarms[].sources); nil: none
	// listed, every matching topic counts towards expect.
	listed map[string]bool
	// overflow counts topics turned away on this connection because
	// values held max_sources already; while it is not 0 the entry is alarm.
	overflow int
	beatAt   time.Time // last heartbeat on this connection; zero: none yet
	trouble  string    // why the source is not supervised fine ("" = fine), to log changes
}

func newAlarmSource(cfg config.Alarm) alarmSource {
	a := alarmSource{cfg: cfg, topic: newTopicPattern(cfg.Topic), matcher: newPayloadMatcher(cfg)}
	if cfg.AvailabilityTopic != "" {
		a.avail = newTopicPattern(cfg.AvailabilityTopic)
	}
	if len(cfg.Sources) > 0 {
		a.listed = map[string]bool{}
		for _, t := range cfg.Sources {
			a.listed[t] = true
		}
	}
	a.reset()
	return a
}

// reset forgets everything the sources said: a new connection starts with
// every source unknown, and unproven.
func (a *alarmSource) reset() {
	a.values = map[string]alarmValue{}
	a.offline = map[string]bool{}
	a.availDropped = false
	a.beatAt = time.Time{}
	a.overflow = 0
}

// active reports whether the entry counts as alarm: any source not
// explicitly clear, more topics than max_sources, or fewer sources (of
// those listed, when listed) than expected have reported. A typo in an
// alarm topic shows up at installation as doors that won't lock, never as
// doors that won't release in a fire.
func (a *alarmSource) active() bool {
	for _, v := range a.values {
		if v != alarmOff {
			return true
		}
	}
	return a.overflow > 0 || a.reported() < a.cfg.MinSources()
}

// reported is how many sources that count towards expect have reported.
func (a *alarmSource) reported() int {
	if a.listed == nil {
		return len(a.values)
	}
	n := 0
	for t := range a.listed {
		if _, ok := a.values[t]; ok {
			n++
		}
	}
	return n
}

// describe says why an active entry is active, for a refused reset.
func (a *alarmSource) describe() string {
	if !a.topic.wild() {
		v, ok := a.values[a.cfg.Topic]
		if !ok {
			v = alarmUnknown
		}
		return a.cfg.Topic + "=" + v.String()
	}
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(a.values)) {
		if v := a.values[t]; v != alarmOff {
			parts = append(parts, t+"="+v.String())
		}
	}
	if n, want := a.reported(), a.cfg.MinSources(); n < want {
		parts = append(parts, fmt.Sprintf("%s: %d of %d expected sources reported", a.cfg.Topic, n, want))
	}
	if a.overflow > 0 {
		parts = append(parts, fmt.Sprintf("%s: %d topics beyond max_sources (%d)", a.cfg.Topic, a.overflow, a.cfg.SourceLimit()))
	}
	return strings.Join(parts, ", ")
}

// supervision says why the source cannot be trusted to report an alarm
// now, or "" when it can: its heartbeat is missing or late, or it is (or
// has not said it is not) offline.
func (a *alarmSource) supervision(now time.Time) string {
	if a.cfg.HeartbeatTopic != "" {
		if a.beatAt.IsZero() {
			return "no heartbeat yet on " + a.cfg.HeartbeatTopic
		}
		if d := now.Sub(a.beatAt); d > a.cfg.HeartbeatTimeout {
			return fmt.Sprintf("no heartbeat on %s for %v (heartbeat_timeout %v)", a.cfg.HeartbeatTopic, d.Round(time.Millisecond), a.cfg.HeartbeatTimeout)
		}
	}
	if a.cfg.AvailabilityTopic == "" || !a.cfg.AvailabilityTrouble() {
		return ""
	}
	if !a.avail.wild() {
		return a.availabilityTrouble(a.cfg.AvailabilityTopic)
	}
	// One availability topic per source: the one whose + levels are the
	// source's. Devices that are not sources do not count. The reason names
	// the first troubled topic in order, so that it only changes (and is
	// logged again) when the trouble does; no sorting: this runs every tick.
	first, why := "", ""
	for t := range a.values {
		captures, _ := a.topic.match(t)
		at := a.avail.expand(captures)
		if w := a.availabilityTrouble(at); w != "" && (first == "" || at < first) {
			first, why = at, w
		}
	}
	return why
}

func (a *alarmSource) availabilityTrouble(topic string) string {
	offline, known := a.offline[topic]
	switch {
	case !known:
		return "no availability yet on " + topic
	case offline:
		return "offline on " + topic
	}
	return ""
}

// filters are the topics to subscribe to for this entry.
func (a *alarmSource) filters() []string {
	f := []string{a.cfg.Topic}
	if a.cfg.HeartbeatTopic != "" {
		f = append(f, a.cfg.HeartbeatTopic)
	}
	if a.cfg.AvailabilityTopic != "" {
		f = append(f, a.cfg.AvailabilityTopic)
	}
	return f
}

// isOffline reads an availability payload: the offline payload itself, or
// a JSON object whose "state" is it (Zigbee2MQTT without its legacy
// availability payload). Anything else is online.
func isOffline(payload []byte, offline string) bool {
	if string(payload) == offline {
		return true
	}
	if len(payload) > 0 && payload[0] == '{' && gjson.ValidBytes(payload) {
		s := gjson.GetBytes(payload, "state")
		return s.Type == gjson.String && s.Str == offline
	}
	return false
}

// onAlarmTopics hands a message to every alarm entry it concerns: as a
// value, a heartbeat or an availability. It reports whether any did.
func (l *loop) onAlarmTopics(e evMessage) bool {
	matched := false
	for i := range l.alarms {
		a := &l.alarms[i]
		if captures, ok := a.topic.match(e.topic); ok {
			l.onAlarmValue(a, e, captures)
			matched = true
		}
		if a.cfg.HeartbeatTopic == e.topic {
			l.onAlarmHeartbeat(a, e)
			matched = true
		}
		if a.cfg.AvailabilityTopic != "" {
			if _, ok := a.avail.match(e.topic); ok {
				l.onAvailability(a, e)
				matched = true
			}
		}
	}
	return matched
}

func (l *loop) onAlarmValue(a *alarmSource, e evMessage, captures []string) {
	res := a.matcher.match(e.payload)
	prev, isSource := a.values[e.topic]
	if !isSource && a.topic.wild() {
		switch {
		case res == matchEmpty:
			// A retained message cleared on a topic that never reported.
			return
		case a.matcher.path != "" && (res == matchNoPath || res == matchNotJSON):
			// Another device under the same wildcard: not a source.
			l.log.Debug("message on an alarm wildcard without the value; not a source", "topic", e.topic, "value_json", a.matcher.path)
			return
		}
	}
	v := alarmValueOf(res)
	if !isSource && a.topic.wild() && !l.admitSource(a, e.topic, v) {
		return
	}
	a.values[e.topic] = v
	if !isSource {
		l.askAvailability(a, captures)
	}
	if v == prev && (isSource || v == alarmUnknown) {
		return // nothing changed (a new source without a value was alarm already)
	}
	// Only on a change, and summarised when it flaps: a flood on an alarm
	// topic is a few lines. An alarm (or a source gone unknown) is a
	// warning; a clear is news.
	level := slog.LevelWarn
	if v == alarmOff {
		level = slog.LevelInfo
	}
	l.recordSafety(auditEvent{Kind: "alarm", Outcome: v.String(), Detail: truncate(e.payload, 40), Origin: "mqtt:" + e.topic}, func() {
		if res == matchUnexpected || res == matchNotJSON {
			l.log.Warn("unexpected alarm payload counts as alarm", "topic", e.topic, "payload", truncate(e.payload, 40),
				"read", res.String(), "want", string(a.matcher.on)+" or "+string(a.matcher.off))
		}
		l.log.Log(context.Background(), level, "alarm source changed", "topic", e.topic, "from", prev.String(), "to", v.String(), "retained", e.retained)
	})
	if v == alarmOn && l.b.cfg.Watchdog.AlarmLatch && !l.latched {
		l.setLatch(true, "alarm on "+e.topic, "alarm:"+e.topic)
	}
	l.evaluate("alarm:" + e.topic)
}

func alarmValueOf(res matchResult) alarmValue {
	switch res {
	case matchOff:
		return alarmOff
	case matchOn:
		return alarmOn
	case matchEmpty, matchNull, matchNoPath:
		return alarmUnknown // no value: alarm, but not a fire report, so no latch
	}
	return alarmOn
}

// admitSource decides whether a new topic under a wildcard becomes a
// source. With sources listed, an unlisted topic's clear is ignored (made-up
// topics must not meet expect) while anything else from it is kept: an
// alarm is an alarm wherever it comes from. Beyond max_sources a topic is
// turned away and the entry counts as alarm (overflow): a flood of made-up
// topics can release doors, which whoever may publish there can do anyway,
// but never hide a detector or grow memory.
func (l *loop) admitSource(a *alarmSource, topic string, v alarmValue) bool {
	if a.listed != nil && !a.listed[topic] && v == alarmOff {
		l.log.Debug("clear from a topic not in the alarm's sources; ignored", "topic", topic, "alarm", a.cfg.Topic)
		return false
	}
	if len(a.values) < a.cfg.SourceLimit() {
		return true
	}
	a.overflow++
	if a.overflow == 1 {
		l.afterIO(func() {
			l.log.Error("alarm wildcard has more topics than max_sources; counting as alarm until the next connection",
				"alarm", a.cfg.Topic, "max_sources", a.cfg.SourceLimit(), "topic", topic)
		})
		l.recordLogged(auditEvent{Kind: "alarm", Outcome: "overflow", Detail: fmt.Sprintf("more than max_sources (%d) topics under %s", a.cfg.SourceLimit(), a.cfg.Topic), Origin: "mqtt:" + topic})
		l.evaluate("alarm:" + a.cfg.Topic)
	}
	return false
}

// onAlarmHeartbeat: any live message on the heartbeat topic proves the
// source alive. A retained one is old news and proves nothing.
func (l *loop) onAlarmHeartbeat(a *alarmSource, e evMessage) {
	if e.retained {
		l.log.Debug("retained alarm heartbeat ignored", "topic", e.topic)
		return
	}
	a.beatAt = l.now()
	if a.trouble != "" {
		l.evaluate("alarm_heartbeat:" + e.topic)
	}
}

// availOfSource reports whether topic is the availability of a source
// (one that has reported a value, or a listed one).
func (a *alarmSource) availOfSource(topic string) bool {
	if !a.avail.wild() {
		return true
	}
	captures, _ := a.avail.match(topic)
	t := a.topic.expand(captures)
	_, source := a.values[t]
	return source || a.listed[t]
}

// askAvailability asks the broker again for a new source's availability
// when availabilities were turned away on this connection and its own is
// not known: Zigbee2MQTT retains availability, not states, so after a
// reconnect a detector is no source until it reports, and its retained
// availability may have come behind more than max_sources others' and been
// turned away; alarm_supervision then held the maglocks released until
// Zigbee2MQTT republished it (review 12 round 2, F1). A SUBSCRIBE to its
// own topic makes the broker send it again. At most one per source.
func (l *loop) askAvailability(a *alarmSource, captures []string) {
	if !a.availDropped || !a.avail.wild() || !l.connected {
		return
	}
	t := a.avail.expand(captures)
	if _, known := a.offline[t]; !known {
		l.mq.resubscribe(l.gen, t)
	}
}

func (l *loop) onAvailability(a *alarmSource, e evMessage) {
	offline := isOffline(e.payload, a.cfg.AvailabilityOffline)
	if _, known := a.offline[e.topic]; !known && len(a.offline) >= a.cfg.SourceLimit() && !a.availOfSource(e.topic) {
		// A flood of made-up devices' availability grows no memory. A
		// source's is always kept: after a reconnect retained messages
		// come in no fixed order, and first come first served dropped a
		// detector's own behind 100 lamps', so alarm_supervision lasted
		// until Zigbee2MQTT republished it (re-review of issue 12 item 5,
		// M1). Sources are bounded by max_sources themselves.
		l.log.Debug("alarm availability beyond max_sources ignored", "topic", e.topic)
		a.availDropped = true
		return
	}
	if len(e.payload) == 0 {
		if _, known := a.offline[e.topic]; !known {
			return // unknown already: a repeated clear changes (and logs) nothing
		}
		delete(a.offline, e.topic) // cleared: unknown again
	} else if was, known := a.offline[e.topic]; known && was == offline {
		return
	} else {
		a.offline[e.topic] = offline
	}
	level := slog.LevelInfo
	if a.avail.wild() {
		captures, _ := a.avail.match(e.topic)
		if _, source := a.values[a.topic.expand(captures)]; !source {
			level = slog.LevelDebug // a device under the wildcard that is not a source
		}
	}
	payload := truncate(e.payload, 40)
	l.afterIO(func() {
		l.log.Log(context.Background(), level, "alarm source availability", "topic", e.topic, "payload", payload, "offline", offline)
	})
	l.evaluate("availability:" + e.topic)
}

// updateSupervision reports whether any alarm source cannot prove it is
// alive (the alarm_supervision hazard). It is judged only while the broker
// link is proven: without it nothing can arrive, and the broker (or
// startup) hazard already holds the doors released.
//
// It acts: a source's change of trouble is logged and audited here. The
// evaluation's origin is then the last source whose trouble began: it
// caused what follows (the hazard, the relays), not what it was handling.
func (l *loop) updateSupervision(now time.Time, origin string) (trouble bool, cause string) {
	for i := range l.alarms {
		a := &l.alarms[i]
		if !l.linkHealthy {
			a.trouble = ""
			continue
		}
		why := a.supervision(now)
		if why != a.trouble {
			if why != "" {
				topic := a.cfg.Topic
				l.afterIO(func() { l.log.Warn("alarm source supervision trouble", "topic", topic, "why", why) })
				if !strings.HasPrefix(origin, "alarm:") {
					// An alarm message that also begins its source's
					// trouble (a new detector reporting a fire before its
					// availability) caused the evaluation: the alarm.
					origin = "alarm_supervision:" + a.cfg.Topic
				}
			} else {
				topic := a.cfg.Topic
				l.afterIO(func() { l.log.Info("alarm source supervised again", "topic", topic) })
			}
			l.recordLogged(auditEvent{Kind: "alarm", Outcome: map[bool]string{true: "trouble", false: "supervised"}[why != ""],
				Detail: why, Origin: "mqtt:" + a.cfg.Topic})
			a.trouble = why
		}
		trouble = trouble || why != ""
	}
	return trouble, origin
}

// logWaiting says, once the broker link is first proven on a connection
// (the retained alarm values have arrived by then), what keeps the
// fail-safe doors released: the alarm sources not yet clear, their
// supervision, the release latch. A new installation whose doors will not
// lock then reads why in one line.
func (l *loop) logWaiting() {
	var released int
	for _, d := range l.b.doors {
		if d.mode == FailSafe {
			released++
		}
	}
	var why []string
	now := l.now()
	for _, a := range l.alarms {
		if a.active() {
			why = append(why, a.waitingFor())
		}
		if s := a.supervision(now); s != "" {
			why = append(why, s)
		}
	}
	if l.latched {
		why = append(why, "the release latch is set (doorbridge alarm reset, or the Reset button in Home Assistant)")
	}
	if len(why) == 0 || released == 0 {
		return
	}
	doors := "doors"
	if released == 1 {
		doors = "door"
	}
	l.afterIO(func() {
		l.log.Info(fmt.Sprintf("%d fail-safe %s released until: %s", released, doors, strings.Join(why, "; ")))
	})
}

// waitingFor says what an active source still has to say to be clear.
func (a *alarmSource) waitingFor() string {
	if a.topic.wild() || a.cfg.ValueJSON != "" {
		return a.describe()
	}
	v, ok := a.values[a.cfg.Topic]
	if !ok {
		v = alarmUnknown
	}
	return fmt.Sprintf("%s says %s (now: %s)", a.cfg.Topic, a.cfg.PayloadOff, v)
}

// alarmAttributes is the fire alarm entity's attributes (B/N/alarm/attributes):
// why it says Detected, which a Home Assistant user cannot tell from the
// state alone when, say, 1 of 3 expected detectors has reported.
func (l *loop) alarmAttributes() string {
	var why []string
	for _, a := range l.alarms {
		if a.active() {
			why = append(why, a.describe())
		}
	}
	if len(why) == 0 {
		return `{"reason":""}`
	}
	b, _ := json.Marshal(map[string]string{"reason": strings.Join(why, "; ")})
	return string(b)
}
