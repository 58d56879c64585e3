package bridge

import (
	"strings"
	"time"
)

// The release drill reminder (R20): a fail-safe door's release is only known
// to work if it is tried. A drill is an alarm (a real one, or `doorbridge
// alarm on`) that released the fail-safe doors that were locked. Without one
// in DrillInterval, HA's "Release drill overdue" problem sensor turns on and
// the log warns once a day.

// DrillInterval is how long after the last release drill the next is due.
const DrillInterval = 31 * 24 * time.Hour

// drillWarnEvery spaces the log warnings while a drill is overdue.
const drillWarnEvery = 24 * time.Hour

// drillState is the loop's view of release drills.
type drillState struct {
	last     time.Time // last drill; zero: none known (a drill is then due)
	warnedAt time.Time // last overdue warning in the log
}

// loadDrill reads the last drill's time kept in bridge.state_dir (zero when
// there is none or it is unreadable: a drill is then due, the safe answer).
func (b *Bridge) loadDrill() time.Time {
	v, err := b.state.Load(drillRecord, nil, nil)
	if err != nil {
		b.log.Error("cannot read the last release drill; a drill is due", "err", err)
	}
	if len(v) == 0 {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, string(v))
	if err != nil {
		b.log.Error("cannot parse the last release drill; a drill is due", "record", drillRecord, "err", err)
		return time.Time{}
	}
	return t
}

// saveDrill keeps the last drill's time in bridge.state_dir. It is also
// kept retained on the broker (B/N/drill/last).
func (b *Bridge) saveDrill(t time.Time) {
	_ = b.state.Save(drillRecord, []byte(t.UTC().Format(time.RFC3339)))
}

// hasFailSafeDoor reports whether any door can be released by a drill. A
// bridge of fail-secure doors only has nothing to drill.
func (b *Bridge) hasFailSafeDoor() bool {
	for _, d := range b.doors {
		if d.mode == FailSafe {
			return true
		}
	}
	return false
}

// armedFailSafe lists the fail-safe doors that are locked (powered) now:
// those a drill must release.
func (l *loop) armedFailSafe() []*door {
	var out []*door
	for _, d := range l.b.doors {
		if d.mode == FailSafe && d.power {
			out = append(out, d)
		}
	}
	return out
}

// noteDrill records a drill when the alarm hazard rose in this evaluation
// and released every fail-safe door that was locked before it (armed). An
// alarm while the doors were already released (on start, or after a lost
// broker) proves nothing about the release and is no drill.
func (l *loop) noteDrill(rose Hazards, armed []*door, origin string) {
	if !rose.Has(HazardAlarm) || len(armed) == 0 {
		return
	}
	for _, d := range armed {
		if d.power || d.fault {
			l.log.Warn("alarm did not release a fail-safe door: not counted as a release drill", "door", d.cfg.ID, "fault", errString(d.faultErr))
			return
		}
	}
	now := l.now()
	l.drill.last, l.drill.warnedAt = now, time.Time{}
	l.log.Info("release drill: the alarm released every locked fail-safe door", "doors", len(armed))
	l.recordLogged(auditEvent{Kind: "drill", Outcome: "released", Detail: "next due " + now.Add(DrillInterval).Format(time.DateOnly), Origin: origin})
	l.b.saveDrill(now)
}

// drillKnown reports whether the last drill's time is known: from
// bridge.state_dir, or else once the broker had the chance to restore it
// (the link was proven, so the retained B/N/drill/last has come).
func (l *loop) drillKnown() bool {
	return l.b.cfg.Bridge.StateDir != "" || l.everLinked || !l.drill.last.IsZero()
}

// drillOverdue reports whether a release drill is due.
func (l *loop) drillOverdue(now time.Time) bool {
	if !l.b.hasFailSafeDoor() || !l.drillKnown() {
		return false
	}
	return l.drill.last.IsZero() || now.Sub(l.drill.last) >= DrillInterval
}

// checkDrill warns in the log, once a day, while a drill is overdue.
func (l *loop) checkDrill(now time.Time) {
	if !l.drillOverdue(now) {
		return
	}
	if !l.drill.warnedAt.IsZero() && now.Sub(l.drill.warnedAt) < drillWarnEvery {
		return
	}
	l.drill.warnedAt = now
	const how = "test it (doorbridge alarm on, check every fail-safe door opens, alarm off, reset)"
	if l.drill.last.IsZero() {
		// A new install: "in 31 days" would claim a history it has not got.
		l.log.Warn("release drill overdue: none on record since doorbridge was installed; "+how, "last_drill", "never")
		return
	}
	l.log.Warn("release drill overdue: no alarm has released the fail-safe doors in 31 days; "+how,
		"last_drill", l.drill.last.Format(time.RFC3339))
}

// publishDrill publishes the reminder and the last drill, retained.
func (l *loop) publishDrill(now time.Time) {
	if !l.drillKnown() {
		return // do not overwrite what the broker may still restore
	}
	l.publishRetained(l.b.topics.DrillOverdue, onOff(l.drillOverdue(now)))
	if !l.drill.last.IsZero() {
		l.publishRetained(l.b.topics.DrillLast, l.drill.last.UTC().Format(time.RFC3339))
	}
}

// onDrillRestore restores the last drill kept retained on the broker, like
// the latch: only from a retained message, and only forward in time. A time
// in the future is refused: it would silence the reminder for good.
func (l *loop) onDrillRestore(e evMessage) {
	if !e.retained || len(e.payload) == 0 {
		return
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(e.payload)))
	now := l.now()
	switch {
	case err != nil:
		l.log.Warn("ignoring an unreadable last release drill", "topic", e.topic, "payload", truncate(e.payload, 40))
		return
	case t.After(now.Add(time.Hour)):
		l.log.Warn("ignoring a last release drill in the future", "topic", e.topic, "time", t.Format(time.RFC3339))
		return
	case !t.After(l.drill.last):
		return
	}
	l.drill.last = t
	l.log.Info("last release drill restored from the broker", "time", t.Format(time.RFC3339))
	l.b.saveDrill(t)
}
