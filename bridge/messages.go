package bridge

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func (l *loop) onMessage(e evMessage) {
	t := l.b.topics
	switch e.topic {
	case t.Heartbeat:
		l.onHeartbeat(e.payload)
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

// commandRejected counts, logs and publishes a refused command; nothing
// changes. why is one of the reject* reasons (the metric's label), reason
// says it for people.
func (l *loop) commandRejected(doorID, errTopic, topic string, payload []byte, why, reason string) {
	l.b.m.commands.WithLabelValues(doorID, "rejected").Inc()
	if why == rejectUnknownDoor {
		l.b.m.commandsRejected.WithLabelValues(unknownDoorLabel, why).Inc()
	} else {
		l.b.m.commandsRejected.WithLabelValues(doorID, why).Inc()
	}
	l.log.Warn("command rejected", "door", doorID, "topic", topic, "reason", reason)
	l.record(auditEvent{Kind: "command", Door: doorID, Outcome: "rejected", Cause: why, Detail: reason, Origin: "mqtt:" + topic})
	b, _ := json.Marshal(map[string]string{"error": reason, "payload": truncate(payload, 64), "topic": topic})
	l.mq.publish(errTopic, string(b), false)
}

func (l *loop) onDoorCommand(id string, e evMessage) {
	d := l.b.byID[id]
	if d == nil {
		if id != "lockdown" {
			l.commandRejected(id, l.b.topics.Error, e.topic, e.payload, rejectUnknownDoor, fmt.Sprintf("unknown door %q", id))
		}
		return
	}
	if e.retained {
		// A retained UNLOCK would unlock the door on every reconnect.
		l.b.m.commands.WithLabelValues(id, "ignored").Inc()
		l.b.m.commandsRejected.WithLabelValues(id, rejectRetained).Inc()
		l.log.Warn("retained command ignored; publish commands without retain", "door", id, "topic", e.topic)
		return
	}
	now := l.now()
	cmd, err := ParseDoorCommand(e.payload, time.Now())
	if err != nil {
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, parseRejectReason(err), err.Error())
		return
	}
	hash := l.b.cfg.EffectiveCodeHash(d.cfg)
	if hash == "" || cmd.Request == RequestLock {
		l.acceptDoorCommand(d, cmd, e.topic)
		return
	}
	switch {
	case now.Before(d.lockedOut):
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, rejectLockout, fmt.Sprintf("codes locked out for %v after %d wrong codes", d.lockedOut.Sub(now).Round(time.Second), l.b.cfg.Codes.MaxFailures))
		return
	case cmd.Code == "":
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, rejectCode, "this door needs a code for "+cmd.Request.String())
		return
	case d.codeBusy:
		l.commandRejected(id, d.topics.Error, e.topic, e.payload, rejectCode, "another code is being checked")
		return
	}
	// bcrypt takes tens of milliseconds on purpose: check off the loop so an
	// alarm is never held up behind a keypad.
	d.codeBusy = true
	events, done := l.b.events, l.mq.done
	go func() {
		ok := bcrypt.CompareHashAndPassword([]byte(hash), []byte(cmd.Code)) == nil
		select {
		case events <- evCodeChecked{door: d, cmd: cmd, topic: e.topic, ok: ok}:
		case <-done:
		}
	}()
}

func (l *loop) onCodeChecked(e evCodeChecked) {
	d := e.door
	d.codeBusy = false
	if e.ok {
		d.codeFailures = 0
		l.acceptDoorCommand(d, e.cmd, e.topic)
		return
	}
	d.codeFailures++
	l.doorEvent(d, "rejected_code")
	reason := "wrong code"
	if d.codeFailures >= l.b.cfg.Codes.MaxFailures {
		d.lockedOut = l.now().Add(l.b.cfg.Codes.Lockout)
		d.codeFailures = 0
		reason = fmt.Sprintf("wrong code; %d in a row: codes refused for %v", l.b.cfg.Codes.MaxFailures, l.b.cfg.Codes.Lockout)
		l.doorEvent(d, "lockout")
	}
	l.commandRejected(d.cfg.ID, d.topics.Error, e.topic, nil, rejectCode, reason)
}

func (l *loop) acceptDoorCommand(d *door, cmd DoorCommand, topic string) {
	now := l.now()
	if r := Refusal(d.mode, l.doorHazards(d, now), cmd.Request); r != "" {
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
	l.record(auditEvent{Kind: "command", Door: d.cfg.ID, Outcome: "accepted", Detail: cmd.Request.String(), Origin: "mqtt:" + topic})
	l.origin = "command:" + topic
	l.evaluate()
}

func (l *loop) onLockdown(e evMessage) {
	if e.retained {
		l.b.m.commands.WithLabelValues("lockdown", "ignored").Inc()
		l.b.m.commandsRejected.WithLabelValues("lockdown", rejectRetained).Inc()
		l.log.Warn("retained lockdown command ignored", "topic", e.topic)
		return
	}
	var req Request
	switch string(e.payload) {
	case "ON":
		req = RequestLockdownOn
	case "OFF":
		req = RequestLockdownOff
	default:
		l.commandRejected("lockdown", l.b.topics.Error, e.topic, e.payload, rejectUnknownCommand, fmt.Sprintf("lockdown payload %q: want ON or OFF", truncate(e.payload, 20)))
		return
	}
	now := l.now()
	for _, d := range l.b.doors {
		if r := Refusal(d.mode, l.doorHazards(d, now), req); r != "" {
			l.commandRejected("lockdown", l.b.topics.Error, e.topic, e.payload, rejectHazard, fmt.Sprintf("door %q: %s", d.cfg.ID, r))
			l.notice("lockdown refused: " + r)
			return
		}
	}
	l.lockdown = req == RequestLockdownOn
	l.saveLater(lockdownRecord, flag(l.lockdown)) // R23: a restart does not end it
	l.b.m.commands.WithLabelValues("lockdown", "accepted").Inc()
	l.log.Info("lockdown", "on", l.lockdown)
	l.record(auditEvent{Kind: "command", Door: "lockdown", Outcome: "accepted", Detail: onOff(l.lockdown), Origin: "mqtt:" + e.topic})
	l.origin = "command:" + e.topic
	l.evaluate()
}

func (l *loop) onReset(e evMessage) {
	if e.retained {
		l.log.Warn("retained reset ignored; publish RESET without retain", "topic", e.topic)
		return
	}
	if string(e.payload) != "RESET" {
		l.notice(fmt.Sprintf("reset refused: payload %q, want RESET", truncate(e.payload, 20)))
		return
	}
	if l.alarmActive() {
		var active []string
		for _, a := range l.alarms {
			if a.active() {
				active = append(active, a.describe())
			}
		}
		msg := "reset refused: alarm still active (" + strings.Join(active, ", ") + ")"
		l.notice(msg)
		b, _ := json.Marshal(map[string]string{"error": msg, "topic": e.topic})
		l.mq.publish(l.b.topics.Error, string(b), false)
		l.record(auditEvent{Kind: "reset", Outcome: "refused", Detail: msg, Origin: "mqtt:" + e.topic})
		return
	}
	if !l.latched {
		l.notice("reset: nothing was latched")
		return
	}
	l.origin = "reset:" + e.topic
	l.setLatch(false, "reset on "+e.topic)
	l.notice("fire release reset: doors relock after relock_delay")
	l.evaluate()
}

// onLatchedRestore restores a latch kept retained on the broker. It can only
// set the latch (the safe direction); clearing takes a reset.
func (l *loop) onLatchedRestore(e evMessage) {
	if e.retained && string(e.payload) == "ON" && !l.latched {
		l.setLatch(true, "restored from retained "+e.topic)
		l.origin = "latch:restore"
		l.evaluate()
	}
}

func (l *loop) setLatch(on bool, why string) {
	l.latched = on
	l.afterIO(func() { l.log.Warn("fire release latch", "latched", on, "why", why) })
	l.record(auditEvent{Kind: "latch", Outcome: onOff(on), Detail: why, Origin: l.origin})
	// On disk after the relays are written, before the rest that waits
	// (flushLater); it is retained on the broker too, with the state.
	l.saveLater(latchRecord, flag(on))
}

func (l *loop) onRepublish(e evMessage) {
	if e.retained {
		return
	}
	if e.topic == l.b.topics.HAStatus && string(e.payload) != "online" {
		return
	}
	if e.topic == l.b.topics.Republish && string(e.payload) != "PRESS" {
		return
	}
	l.log.Info("republishing discovery and state", "topic", e.topic)
	l.scheduleRepublish()
}
