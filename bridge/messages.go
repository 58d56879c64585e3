package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/mqttapi"
)

func (l *loop) onMessage(e evMessage) {
	t := l.b.topics
	switch e.topic {
	case t.Heartbeat:
		l.onHeartbeat(e)
		return
	case t.AlarmReset:
		l.onReset(e)
		return
	case t.AlarmLatched:
		l.onLatchedRestore(e)
		return
	case t.DrillLast:
		l.onDrillRestore(e)
		return
	case t.LockdownSet:
		l.onLockdown(e)
		return
	case t.Republish, t.HAStatus:
		l.onRepublish(e)
		l.onAlarmTopics(e) // Home Assistant's status may be an alarm source's availability
		return
	}
	if strings.HasPrefix(e.topic, l.b.cfg.MQTT.DiscoveryPrefix+"/device/") {
		l.onDiscoveryConfig(e)
		return
	}
	matched := false
	if l.onAlarmTopics(e) {
		matched = true
	}
	for i := range l.mqttPower {
		if l.mqttPower[i].cfg.Topic == e.topic {
			l.onPowerMessage(&l.mqttPower[i], e)
			matched = true
		}
	}
	if matched {
		return
	}
	if id, ok := t.DoorFromCommandTopic(e.topic); ok {
		l.onDoorCommand(id, e)
	}
}

// commandRejected counts a refused command (nothing changes) and reports
// it: in full (a log line, an audit record, a message on errTopic) up to
// rejectBurst a minute per door, then in one summary per minute (rejects.go),
// so that a flood costs no more than counting. why is one of the reject*
// reasons (the metric's label), reason says it for people. The payload is
// echoed without its code. It reports whether the rejection was reported
// in full (anything else said about it should be too).
func (l *loop) commandRejected(doorID, errTopic, topic string, payload []byte, why, reason string) bool {
	label := l.doorLabel(doorID)
	l.b.m.commands.WithLabelValues(label, "rejected").Inc()
	l.b.m.commandsRejected.WithLabelValues(label, why).Inc()
	full, closed := l.rejects.allow(l.now(), label, topic, why, errTopic)
	if closed != nil {
		l.reportRejectSummary(*closed)
	}
	if !full {
		return false
	}
	l.afterIO(func() { l.log.Warn("command rejected", "door", doorID, "topic", topic, "reason", reason) })
	l.recordLogged(auditEvent{Kind: "command", Door: doorID, Outcome: "rejected", Cause: why, Detail: reason, Origin: "mqtt:" + topic})
	b, _ := json.Marshal(map[string]string{"error": reason, "payload": redactPayload(payload), "topic": topic})
	l.mq.publish(errTopic, string(b), false)
	return true
}

// doorLabel is the door label of a command's metrics: a configured door,
// "lockdown", or unknownDoorLabel; never an id taken from a topic, with
// which anyone who may publish could add series without end.
func (l *loop) doorLabel(id string) string {
	if _, ok := l.b.byID[id]; ok || id == "lockdown" {
		return id
	}
	return unknownDoorLabel
}

// redactPayload is what may be shown of a command payload: a bare word the
// bridge knows (LOCK, ON, RESET...) as it is; of a JSON object only a known
// action and a ts the parser reads; of anything else only its length. A
// payload the bridge cannot read may hold a code anywhere ("UNLOCK 1234",
// "1234", a key "pin", a nested "code"), and what is shown here is
// published, logged and audited.
func redactPayload(p []byte) string {
	t := bytes.TrimSpace(p)
	if shownWord(string(t)) {
		return string(t)
	}
	if len(t) == 0 || t[0] != '{' || len(t) > MaxCommandSize {
		return fmt.Sprintf("(%d bytes, not shown)", len(p))
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(t, &m) != nil {
		return fmt.Sprintf("(%d bytes of JSON, not shown)", len(p))
	}
	shown := map[string]json.RawMessage{}
	for k, v := range m {
		var s string
		switch {
		case k == "action" && json.Unmarshal(v, &s) == nil && shownWord(s):
			shown[k] = v
		case k == "ts":
			if _, err := parseTS(v); err == nil {
				shown[k] = v
			}
		}
	}
	b, _ := json.Marshal(shown)
	if hidden := len(m) - len(shown); hidden > 0 {
		return fmt.Sprintf("%s and %d more key(s), not shown", b, hidden)
	}
	return string(b)
}

// shownWord reports whether s is a command word of the bridge's, which
// holds no code.
func shownWord(s string) bool {
	if _, ok := parseAction(s); ok {
		return true
	}
	return s == mqttapi.On || s == mqttapi.Off || s == mqttapi.Reset || s == mqttapi.Press
}

func (l *loop) onDoorCommand(id string, e evMessage) {
	d := l.b.byID[id]
	if d == nil {
		if id != "lockdown" {
			l.commandRejected(id, l.b.topics.Error, e.topic, e.payload, rejectUnknownDoor, fmt.Sprintf("unknown door %q", truncate([]byte(id), 40)))
		}
		return
	}
	if e.retained {
		// A retained UNLOCK would unlock the door on every reconnect.
		l.commandIgnored(id, e.topic)
		return
	}
	now := l.now()
	cmd, err := ParseDoorCommand(e.payload, time.Now())
	if err != nil {
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, parseRejectReason(err), err.Error())
		return
	}
	g := d.guard
	if g == nil || cmd.Request == RequestLock {
		d.commands++ // a code check still running is for an earlier command
		l.acceptDoorCommand(d, cmd, e.topic)
		return
	}
	switch {
	case now.Before(g.until):
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, rejectLockout, fmt.Sprintf("codes locked out for %v after %d wrong codes", g.until.Sub(now).Round(time.Second), l.b.cfg.Codes.MaxFailures))
		return
	case cmd.Code == "":
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, rejectCode, "this door needs a code for "+cmd.Request.String())
		return
	case g.busy:
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, rejectCode, "another code is being checked")
		return
	}
	d.commands++
	l.checkCode(d, cmd, e.topic)
}

// commandIgnored counts a retained command; it is logged like a rejection.
func (l *loop) commandIgnored(id, topic string) {
	l.b.m.commands.WithLabelValues(id, "ignored").Inc()
	l.b.m.commandsRejected.WithLabelValues(id, rejectRetained).Inc()
	full, closed := l.rejects.allow(l.now(), id, topic, rejectRetained, "")
	if closed != nil {
		l.reportRejectSummary(*closed)
	}
	if full {
		l.log.Warn("retained command ignored; publish commands without retain", "door", id, "topic", topic)
	}
}

// checkCode checks cmd's code off the loop: bcrypt takes tens of
// milliseconds on purpose, and an alarm must never wait behind a keypad.
// The check counts as a wrong code until it succeeds, and that count is on
// disk (flushLater) before the result can be known.
func (l *loop) checkCode(d *door, cmd DoorCommand, topic string) {
	g := d.guard
	g.busy = true
	g.failures++
	l.codesToSave = true
	events, done := l.b.events, l.mqDone()
	at := codeCheckStart{command: d.commands, gen: l.gen, hazardRises: l.hazardRises}
	go func() {
		ok := bcrypt.CompareHashAndPassword([]byte(g.hash), []byte(cmd.Code)) == nil
		select {
		case events <- evCodeChecked{door: d, cmd: cmd, topic: topic, ok: ok, at: at}:
		case <-done:
		}
	}()
}

// mqDone is closed when MQTT stops (nil, never closed, without MQTT).
func (l *loop) mqDone() chan struct{} {
	if l.mq == nil {
		return nil
	}
	return l.mq.done
}

func (l *loop) onCodeChecked(e evCodeChecked) {
	d, g := e.door, e.door.guard
	g.busy = false
	l.codesToSave = true
	if e.ok {
		g.failures, g.lockouts = 0, 0
		if why := l.superseded(d, e.at); why != "" {
			l.commandRejected(d.cfg.ID, d.topics.Error, e.topic, []byte(e.cmd.Request.String()), rejectSuperseded, why)
			return
		}
		l.acceptDoorCommand(d, e.cmd, e.topic)
		return
	}
	l.doorEvent(d, mqttapi.EventRejectedCode)
	reason := "wrong code"
	if limit := l.b.cfg.Codes.MaxFailures; g.failures >= limit {
		g.lockouts++
		c := l.b.cfg.Codes
		dur := lockoutFor(g.lockouts, c.Lockout, c.MaxLockout)
		g.until, g.failures = l.now().Add(dur), 0
		reason = fmt.Sprintf("wrong code; %d in a row: codes refused for %v", limit, dur)
		l.doorEvent(d, mqttapi.EventLockout)
		l.afterIO(func() { l.log.Warn("code locked out", "doors", g.doorList(), "for", dur, "lockouts", g.lockouts) })
		l.recordLogged(auditEvent{Kind: "code", Door: d.cfg.ID, Outcome: "locked_out", Cause: rejectLockout,
			Detail: fmt.Sprintf("%d wrong codes in a row; the code of %s refused for %v (lockout %d since the last right code)", limit, g.doorList(), dur, g.lockouts),
			Origin: "mqtt:" + e.topic})
	}
	l.commandRejected(d.cfg.ID, d.topics.Error, e.topic, nil, rejectCode, reason)
}

// codeCheckStart is what the loop saw when a code check started.
type codeCheckStart struct {
	command     uint64 // the door's command count: this command's number
	gen         uint64 // the MQTT connection it came on
	hazardRises uint64
}

// superseded says why a right code's command comes too late, or "": the
// check runs off the loop while later events are applied, and a command
// must never overtake a later one (R21: the last command wins), a hazard
// that rose (even one gone again), or a reconnect (R18).
func (l *loop) superseded(d *door, at codeCheckStart) string {
	switch {
	case d.commands != at.command:
		return "dropped: a later command to this door arrived while its code was being checked"
	case l.gen != at.gen || !l.connected:
		return "dropped: the MQTT connection it came on ended while its code was being checked"
	case l.hazardRises != at.hazardRises:
		return "dropped: a hazard rose while its code was being checked"
	}
	return ""
}

func (l *loop) acceptDoorCommand(d *door, cmd DoorCommand, topic string) {
	now := l.now()
	if r := Refusal(d.mode, l.doorHazards(d, now)|l.overtaken, cmd.Request); r != "" {
		l.commandRejected(d.cfg.ID, d.topics.Error, topic, []byte(cmd.Request.String()), rejectHazard, r)
		return
	}
	switch cmd.Request {
	case RequestLock:
		d.command, d.momentaryUntil = CommandLock, time.Time{}
	case RequestUnlock:
		d.command, d.momentaryUntil = CommandUnlock, time.Time{}
	case RequestOpen:
		d.momentaryUntil = now.Add(d.cfg.UnlockTime)
	}
	l.b.m.commands.WithLabelValues(d.cfg.ID, "accepted").Inc()
	l.afterIO(func() {
		l.log.Info("command accepted", "door", d.cfg.ID, "command", cmd.Request.String(), "topic", topic)
	})
	l.recordLogged(auditEvent{Kind: "command", Door: d.cfg.ID, Outcome: "accepted", Detail: cmd.Request.String(), Origin: "mqtt:" + topic})
	l.evaluate("command:" + topic)
}

func (l *loop) onLockdown(e evMessage) {
	if e.retained {
		l.commandIgnored("lockdown", e.topic)
		return
	}
	var req Request
	switch string(e.payload) {
	case mqttapi.On:
		req = RequestLockdownOn
	case mqttapi.Off:
		req = RequestLockdownOff
	default:
		l.commandRejected("lockdown", l.b.topics.Error, e.topic, e.payload, rejectUnknownCommand, fmt.Sprintf("lockdown payload %s: want ON or OFF", redactPayload(e.payload)))
		return
	}
	now := l.now()
	for _, d := range l.b.doors {
		if r := Refusal(d.mode, l.doorHazards(d, now)|l.overtaken, req); r != "" {
			if l.commandRejected("lockdown", l.b.topics.Error, e.topic, e.payload, rejectHazard, fmt.Sprintf("door %q: %s", d.cfg.ID, r)) {
				l.warnNotice("lockdown refused: " + r)
			}
			return
		}
	}
	l.b.m.commands.WithLabelValues("lockdown", "accepted").Inc()
	if on := req == RequestLockdownOn; on == l.lockdown {
		l.lockdownUnchanged(e.topic)
		return
	}
	l.lockdown = req == RequestLockdownOn
	l.saveLater(lockdownRecord, flag(l.lockdown)) // R23: a restart does not end it
	l.log.Info("lockdown", "on", l.lockdown)
	l.recordLogged(auditEvent{Kind: "command", Door: "lockdown", Outcome: "accepted", Detail: onOff(l.lockdown), Origin: "mqtt:" + e.topic})
	l.evaluate("command:" + e.topic)
}

// lockdownUnchanged reports a lockdown command that asked for the state
// there is: accepted, but nothing changes, so it is no safety record (it
// goes to the commands file, audit.Safety) and nothing is saved. Like
// rejected commands, a flood of them is summarised (rejects.go): a client
// repeating "ON" must not cost a log line and an audit record each.
func (l *loop) lockdownUnchanged(topic string) {
	full, closed := l.unchanged.allow(l.now(), "lockdown", topic, "unchanged", "")
	if closed != nil {
		l.reportRejectSummary(*closed)
	}
	if !full {
		return
	}
	on := onOff(l.lockdown)
	l.afterIO(func() { l.log.Info("lockdown unchanged", "on", on, "topic", topic) })
	l.recordLogged(auditEvent{Kind: "command", Door: "lockdown", Outcome: "unchanged", Detail: on, Origin: "mqtt:" + topic})
}

func (l *loop) onReset(e evMessage) {
	if e.retained {
		l.log.Warn("retained reset ignored; publish RESET without retain", "topic", e.topic)
		return
	}
	if string(e.payload) != mqttapi.Reset {
		if l.resetRefusalReported(e.topic, rejectUnknownCommand) {
			l.warnNotice(fmt.Sprintf("reset refused: payload %s, want RESET", redactPayload(e.payload)))
		}
		return
	}
	if l.alarmActive() {
		if !l.resetRefusalReported(e.topic, "alarm_active") {
			return
		}
		var active []string
		for _, a := range l.alarms {
			if a.active() {
				active = append(active, a.describe())
			}
		}
		msg := "reset refused: alarm still active (" + strings.Join(active, ", ") + ")"
		l.warnNotice(msg)
		b, _ := json.Marshal(map[string]string{"error": msg, "topic": e.topic})
		l.mq.publish(l.b.topics.Error, string(b), false)
		l.recordLogged(auditEvent{Kind: "reset", Outcome: "refused", Detail: msg, Origin: "mqtt:" + e.topic})
		return
	}
	if !l.latched {
		l.notice("reset: nothing was latched")
		return
	}
	l.setLatch(false, "reset on "+e.topic, "reset:"+e.topic)
	l.notice("fire release reset: doors relock after relock_delay")
	l.evaluate("reset:" + e.topic)
}

// resetRefusalReported reports whether a refused reset may be reported in
// full: like rejected commands, a flood of them is summarised (rejects.go).
func (l *loop) resetRefusalReported(topic, why string) bool {
	full, closed := l.rejects.allow(l.now(), "reset", topic, why, l.b.topics.Error)
	if closed != nil {
		l.reportRejectSummary(*closed)
	}
	return full
}

// onLatchedRestore restores a latch kept retained on the broker. It can only
// set the latch (the safe direction); clearing takes a reset.
func (l *loop) onLatchedRestore(e evMessage) {
	if e.retained && string(e.payload) == mqttapi.On && !l.latched {
		l.setLatch(true, "restored from retained "+e.topic, "latch:restore")
		l.evaluate("latch:restore")
	}
}

// setLatch sets or clears the fire release latch for why, caused by origin.
func (l *loop) setLatch(on bool, why, origin string) {
	l.latched = on
	level := slog.LevelWarn // set: the doors are held released
	if !on {
		level = slog.LevelInfo // a reset
	}
	l.afterIO(func() { l.log.Log(context.Background(), level, "fire release latch", "latched", on, "why", why) })
	l.recordLogged(auditEvent{Kind: "latch", Outcome: onOff(on), Detail: why, Origin: origin})
	// On disk after the relays are written, before the rest that waits
	// (flushLater); it is retained on the broker too, with the state.
	if on { // alarm_latched for a rollback: "1" first, "0" last (state.go)
		l.saveLater(legacyLatchRecord, flag(on))
		l.saveLater(latchRecord, flag(on))
	} else {
		l.saveLater(latchRecord, flag(on))
		l.saveLater(legacyLatchRecord, flag(on))
	}
}

func (l *loop) onRepublish(e evMessage) {
	if e.retained {
		return
	}
	if e.topic == l.b.topics.HAStatus && string(e.payload) != mqttapi.Online {
		return
	}
	if e.topic == l.b.topics.Republish && string(e.payload) != mqttapi.Press {
		return
	}
	l.scheduleRepublish(e.topic)
}
