package main

import (
	"fmt"
	"sync"
	"time"
)

// truth is what the soak did to the bridge: the hazards it caused, as
// intervals of real time. The monitor judges the relays against it alone,
// never against what the bridge says.
//
// A hazard is "definite" only while the soak is sure the bridge can know of
// it: an alarm or power message counts from when it was published or, if the
// link was down then, from when the link came back (the bridge gets the
// retained value on reconnection); while the link is down, the link hazard
// itself is what counts. Where the soak cannot know (a RESET sent while the
// bridge may not hear it), the hazard ends: the monitor errs on the lenient
// side and never reports a bridge for something it could not have known.
type truth struct {
	mu      sync.Mutex
	periods []*period
	alarm   string  // last alarm payload published
	power   string  // last power payload published
	alarmP  *period // open alarm period (alarm active or latched), nil if none
	powerP  *period // open power period, nil if none
	downP   map[string]*period
}

// period is one hazard from start to end (zero: still going on).
type period struct {
	kind       string // alarm, power (message hazards); broker, silent, bridge (the link is down)
	start, end time.Time
	why        string
}

func (p *period) message() bool { return p.kind == "alarm" || p.kind == "power" }

func (p *period) activeAt(t time.Time) bool {
	return !t.Before(p.start) && (p.end.IsZero() || t.Before(p.end))
}

func newTruth() *truth {
	return &truth{alarm: "OFF", power: "ON", downP: map[string]*period{}}
}

func (tr *truth) open(kind string, t time.Time, why string) *period {
	p := &period{kind: kind, start: t, why: why}
	tr.periods = append(tr.periods, p)
	// Old, closed periods no longer matter to any check.
	if len(tr.periods) > 256 {
		kept := tr.periods[:0]
		for _, q := range tr.periods {
			if q.end.IsZero() || time.Since(q.end) < time.Minute {
				kept = append(kept, q)
			}
		}
		tr.periods = kept
	}
	return p
}

// alarmPublished records an alarm payload published at t. Any payload but
// OFF is an alarm (R5) and sets the latch (alarm_latch: true).
func (tr *truth) alarmPublished(payload string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.alarm = payload
	if payload != "OFF" && tr.alarmP == nil {
		tr.alarmP = tr.open("alarm", t, fmt.Sprintf("alarm %q published", payload))
	}
}

// resetSent records a RESET sent at t: with the alarm clear the bridge may
// now clear its latch, so the alarm hazard is no longer definite.
func (tr *truth) resetSent(t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.alarm == "OFF" && tr.alarmP != nil {
		tr.alarmP.end = t
		tr.alarmP = nil
	}
}

func (tr *truth) powerPublished(payload string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.power = payload
	switch {
	case payload != "ON" && tr.powerP == nil:
		tr.powerP = tr.open("power", t, fmt.Sprintf("power %q published", payload))
	case payload == "ON" && tr.powerP != nil:
		tr.powerP.end = t
		tr.powerP = nil
	}
}

// down records that the link went down at t: broker killed, link silent or
// bridge stopped.
func (tr *truth) down(kind string, t time.Time, why string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.downP[kind] == nil {
		tr.downP[kind] = tr.open(kind, t, why)
	}
}

// up records that the link is back at t.
func (tr *truth) up(kind string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if p := tr.downP[kind]; p != nil {
		p.end = t
		delete(tr.downP, kind)
	}
}

// linkUp reports whether nothing keeps the bridge from the broker now.
func (tr *truth) linkUp() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.downP) == 0
}

// values returns the retained alarm and power payloads to publish again on
// a fresh broker.
func (tr *truth) values() (alarm, power string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.alarm, tr.power
}

// budgets of one check: how long each kind of hazard may last before the
// bridge must have acted.
type budgets map[string]time.Duration

// overdue returns a hazard active at t for longer than its budget, or nil.
func (tr *truth) overdue(t time.Time, b budgets) *period {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var linkDown bool
	var restored time.Time // the last time the link came back, at or before t
	for _, p := range tr.periods {
		if p.message() {
			continue
		}
		if p.activeAt(t) {
			linkDown = true
		} else if !p.end.IsZero() && !p.end.After(t) && p.end.After(restored) {
			restored = p.end
		}
	}
	for _, p := range tr.periods {
		if !p.activeAt(t) {
			continue
		}
		start := p.start
		if p.message() {
			if linkDown {
				continue // the bridge cannot hear it; the link hazard counts
			}
			if restored.After(start) {
				start = restored
			}
		}
		if t.Sub(start) > b[p.kind] {
			return p
		}
	}
	return nil
}

// stillActive reports whether p has not ended by t.
func (tr *truth) stillActive(p *period, t time.Time) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return p.end.IsZero() || t.Before(p.end)
}
