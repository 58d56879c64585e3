package bridge

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// auditEvent is one entry of the audit trail: every change of lock power,
// every command, every hazard raised and cleared (R20).
type auditEvent struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // relay, command, hazard, alarm, latch, reset, driver
	Door      string    `json:"door,omitempty"`
	Hazard    string    `json:"hazard,omitempty"`
	Energized *bool     `json:"energized,omitempty"`
	Cause     string    `json:"cause,omitempty"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail,omitempty"`
	Origin    string    `json:"origin,omitempty"`
}

// auditLog numbers events with a monotonic sequence and logs them.
type auditLog struct {
	log  *slog.Logger
	seq  atomic.Uint64
	sink func(auditEvent) // optional: MQTT publisher
}

func newAuditLog(log *slog.Logger) *auditLog {
	return &auditLog{log: log.With("component", "audit")}
}

func (a *auditLog) record(e auditEvent) {
	e.Seq = a.seq.Add(1)
	e.Time = time.Now()
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
	if a.sink != nil {
		a.sink(e)
	}
}
