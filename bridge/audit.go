package bridge

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorbridge/doorbridge/audit"
)

// auditEvent is one entry of the audit trail: every change of lock power,
// every command, every hazard raised and cleared (R20).
type auditEvent = audit.Event

// auditLog numbers events with a monotonic sequence and logs them; they also
// go to the audit file (audit.file) and to MQTT (B/N/events).
type auditLog struct {
	log  *slog.Logger
	mu   sync.Mutex // orders seq and the file's queue
	seq  atomic.Uint64
	sink func(auditEvent) // optional: MQTT publisher
	file *audit.Writer    // optional: audit.file
	// recent keeps the last events for the web console, earlier those of
	// audit.file from before (console.go).
	recent      recentLog
	earlier     []audit.Event
	earlierOnce sync.Once
}

func newAuditLog(log *slog.Logger) *auditLog {
	return &auditLog{log: log.With("component", "audit")}
}

// record numbers e and writes it out. A zero e.Time is now. logged: the
// event has a log line of its own, so the audit trail (the file,
// B/N/events, the console) takes it without a second line in the log: one
// line per event.
func (a *auditLog) record(e auditEvent, logged bool) {
	e = a.recordTo(e, logged)
	if a.sink != nil {
		a.sink(e)
	}
}

// recordLocal numbers e and writes it to the log and the audit file only:
// the watchdog and the panic paths record this way, from any goroutine,
// without the loop or MQTT.
func (a *auditLog) recordLocal(e auditEvent) auditEvent { return a.recordTo(e, false) }

func (a *auditLog) recordTo(e auditEvent, logged bool) auditEvent {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	// Numbered and queued for the file in one step: the file keeps the
	// sequence in order when the watchdog records beside the loop.
	a.mu.Lock()
	e.Seq = a.seq.Add(1)
	if a.file != nil {
		a.file.Write(e)
	}
	a.mu.Unlock()
	a.recent.add(e) // for the web console (console.go)
	if logged {
		return e
	}
	attrs := []any{"seq", e.Seq, "kind", e.Kind, "outcome", e.Outcome}
	if e.Door != "" {
		attrs = append(attrs, "door", e.Door)
	}
	if e.Hazard != "" {
		attrs = append(attrs, "hazard", e.Hazard)
	}
	if e.Energized != nil {
		attrs = append(attrs, "energized", *e.Energized)
	}
	if e.Cause != "" {
		attrs = append(attrs, "cause", e.Cause)
	}
	if e.Detail != "" {
		attrs = append(attrs, "detail", e.Detail)
	}
	if e.Origin != "" {
		attrs = append(attrs, "origin", e.Origin)
	}
	a.log.Info("audit", attrs...)
	return e
}

// openAuditFile opens audit.file, when set: a file that cannot be written is
// a configuration error to see at start (a /data volume the container's user
// cannot write, say), not an audit trail found empty after an incident. The
// sequence goes on from the last event in the file.
func (b *Bridge) openAuditFile() error {
	a := b.cfg.Audit
	if a.File == "" {
		return nil
	}
	w, err := audit.Open(audit.Options{
		Path: a.File, MaxSize: int64(a.MaxSize), MaxFiles: a.MaxFiles,
		Log: b.audit.log, OnDrop: b.m.auditDropped.Inc,
	})
	if err != nil {
		return fmt.Errorf("audit.file: %w", err)
	}
	b.audit.file = w
	b.audit.seq.Store(audit.LastSeq(a.File))
	return nil
}

// close records the stop and closes the audit file, waiting at most a
// second for a slow disk (SIGTERM's grace period is 10 s).
func (a *auditLog) close() {
	a.sink = nil // MQTT is closed by now
	a.record(auditEvent{Kind: "bridge", Outcome: "stopped"}, false)
	if a.file != nil {
		if err := a.file.Close(time.Second); err != nil {
			a.log.Error("closing the audit file", "err", err)
		}
	}
}

// eventPublisher publishes audit events on B/N/events, not retained: a
// stream for automations, not a state.
func eventPublisher(mq *mqttLink, topic string) func(auditEvent) {
	return func(e auditEvent) {
		if p, err := json.Marshal(e); err == nil {
			mq.publish(topic, string(p), false)
		}
	}
}

// record queues an audit event of the loop; it is written out (log line,
// audit file, B/N/events) by flushLater, once the relays of this event are
// written and the state is published. It keeps the time it happened.
func (l *loop) record(e auditEvent) {
	e.Time = time.Now()
	l.afterIO(func() { l.b.audit.record(e, false) })
}

// recordLogged is record for an event that logs a line of its own (queued
// before it): the audit trail takes it, the log does not repeat it.
func (l *loop) recordLogged(e auditEvent) {
	e.Time = time.Now()
	l.afterIO(func() { l.b.audit.record(e, true) })
}

// afterIO queues f (a log line, an audit event) to run after the relays of
// the current event are written and its state published: the slow writes
// (stderr, the audit file, JSON for B/N/events) must not stand between a
// command or an alarm and the relay, nor hold up the state message behind
// them. Queued work runs in order.
func (l *loop) afterIO(f func()) { l.later = append(l.later, f) }

// flushLater runs what afterIO queued. The loop calls it after every event
// and tick, and after its start-up and shutdown evaluations.
// State records (the latch first) go to disk first: they must not wait
// behind a slow stderr.
// An entry is cleared before it runs, so that after a panic in one the
// panic handler's flush runs the rest, not that one again.
func (l *loop) flushLater() {
	l.flushSaves()
	if l.codesToSave {
		l.codesToSave = false
		l.b.saveCodeState()
	}
	for i, f := range l.later {
		if f == nil {
			continue
		}
		l.later[i] = nil
		f()
	}
	l.later = l.later[:0]
}

// hazardLevel is the log level of a hazard raised from origin: WARN, but
// INFO for the bridge's own start and stop, where every door starts and
// ends released as a matter of course (a normal start logs no warning).
func hazardLevel(origin string) slog.Level {
	if origin == "startup" || origin == "shutdown" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
