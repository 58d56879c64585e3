package main

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// truth is what the soak did to the bridge: the hazards it caused, as
// intervals of real time. The monitor judges the relays against it alone,
// never against what the bridge says.
//
// A hazard is "definite" only while the soak is sure the bridge can know of
// it, and the monitor errs on the lenient side: it never reports a bridge
// for something it could not have known.
//   - The link is down from the cause (broker SIGKILL, proxy silent, SIGTERM
//     of the bridge, and the start of every bridge process, the first one
//     too: a process that has not connected yet has seen nothing) until the bridge is subscribed again, which the monitor
//     sees as the first heartbeat the bridge sent after the link was
//     restored (a heartbeat carries its send time).
//   - An alarm or power message counts from when it was published or, if
//     the link was down then, from when it came back (the bridge gets the
//     retained value on resubscription); while the link is down the link
//     hazard is what counts.
//   - An alarm latches (alarm_latch: true) only if the bridge surely saw
//     it: the link up for latchSeen after it was published, and no OFF
//     before that. Otherwise (a value overwritten while the bridge was
//     reconnecting is never delivered) the alarm hazard ends at the OFF. A
//     RESET sent with the alarm clear ends it too: the bridge may have
//     cleared its latch.
type truth struct {
	mu      sync.Mutex
	periods []*period
	alarm   string  // last alarm payload published
	power   string  // last power payload published
	alarmP  *period // open alarm period (alarm active or latched), nil if none
	powerP  *period // open power period, nil if none
	downP   map[string]*period
	// faults are the relay channels whose writes the soak breaks (the sim
	// driver's faults_file), with when each began and ended (zero: on).
	faults map[string]*faultWindow
}

// faultWindow is one channel's fault, from the faults file's write.
type faultWindow struct {
	kind       string // delay, hang, error
	start, end time.Time
}

// faultGrace is how long after a fault is removed its relay may still lag:
// the next retry of the write, and a delayed write that was under way.
const faultGrace = 2500 * time.Millisecond

// latchSeen is how long the link must stay up after an alarm was published
// for the soak to be sure the bridge saw it.
const latchSeen = 300 * time.Millisecond

// period is one hazard from start to end (zero: still going on).
type period struct {
	kind       string // alarm, power (message hazards); broker, silent, bridge (the link is down)
	start, end time.Time
	restored   time.Time // link periods: when the cause was undone (zero: not yet)
	why        string
	latched    bool // alarm periods: the bridge said it latched this alarm
}

func (p *period) message() bool { return p.kind == "alarm" || p.kind == "power" }

func (p *period) activeAt(t time.Time) bool {
	return !t.Before(p.start) && (p.end.IsZero() || t.Before(p.end))
}

func newTruth() *truth {
	return &truth{alarm: "OFF", power: "ON", downP: map[string]*period{}, faults: map[string]*faultWindow{}}
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
// OFF is an alarm (R5).
func (tr *truth) alarmPublished(payload string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.alarm = payload
	switch {
	case payload != "OFF" && tr.alarmP == nil:
		tr.alarmP = tr.open("alarm", t, fmt.Sprintf("alarm %q published", payload))
	case payload == "OFF" && tr.alarmP != nil && !tr.alarmP.latched && !tr.seenLocked(tr.alarmP.start, t):
		tr.alarmP.end = t
		tr.alarmP = nil
	}
}

// seenLocked reports whether a message published at start was surely
// delivered before t: the link up throughout [start, start+latchSeen] and t
// after that.
func (tr *truth) seenLocked(start, t time.Time) bool {
	until := start.Add(latchSeen)
	if t.Before(until) {
		return false
	}
	for _, p := range tr.periods {
		if p.message() {
			continue
		}
		// A link period overlapping [start, until] means the link was down
		// at some moment of it.
		if p.start.Before(until) && (p.end.IsZero() || p.end.After(start)) {
			return false
		}
	}
	return true
}

// latchConfirmed records that the bridge said it latched the alarm now
// active (its API's alarm_latched): the release holds after the OFF, until
// a RESET, whatever the timing.
func (tr *truth) latchConfirmed() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.alarmP != nil {
		tr.alarmP.latched = true
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
	if p := tr.downP[kind]; p == nil {
		tr.downP[kind] = tr.open(kind, t, why)
	} else {
		p.restored = time.Time{} // down again before the bridge was back
	}
}

// restored records that the cause was undone at t; the link is up once the
// bridge sends a heartbeat after t.
func (tr *truth) restored(kind string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if p := tr.downP[kind]; p != nil {
		p.restored = t
	}
}

// heartbeat records a heartbeat the bridge sent at sent: it is subscribed
// on a live link, which ends every link period restored before.
//
// Only the send time counts. A heartbeat sent while the proxy was silent and
// delivered when it resumed may come from a connection the bridge has
// already dropped (dropSilentConnection, after 2 × heartbeat_timeout; the
// proxy delivers what a closed connection sent before its close), so its
// arrival proves nothing (review of session 6). silentLink waits for the
// next heartbeat instead.
func (tr *truth) heartbeat(sent time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for kind, p := range tr.downP {
		if !p.restored.IsZero() && sent.After(p.restored) {
			p.end = sent
			delete(tr.downP, kind)
		}
	}
}

// linkUp reports whether the bridge is known to be subscribed on a live link.
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
	var late []*period
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
			late = append(late, p)
		}
	}
	if len(late) == 0 {
		return nil
	}
	sort.Slice(late, func(i, j int) bool { return late[i].start.Before(late[j].start) })
	return late[0]
}

// stillActive reports whether p has not ended by t.
func (tr *truth) stillActive(p *period, t time.Time) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return p.end.IsZero() || t.Before(p.end)
}

// faultSet records that channel ch's writes are broken from t.
func (tr *truth) faultSet(ch, kind string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.faults[ch] = &faultWindow{kind: kind, start: t}
}

// faultCleared records that channel ch's writes work again from t.
func (tr *truth) faultCleared(ch string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if f := tr.faults[ch]; f != nil && f.end.IsZero() {
		f.end = t
	}
}

// faulted reports whether channel ch's relay may not follow the bridge at
// t: its writes are broken, or were until faultGrace before.
func (tr *truth) faulted(ch string, t time.Time) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	f := tr.faults[ch]
	return f != nil && !t.Before(f.start) && (f.end.IsZero() || t.Before(f.end.Add(faultGrace)))
}

// faultedNow returns the channels with a fault on now, and its kind.
func (tr *truth) faultedNow() map[string]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]string{}
	for ch, f := range tr.faults {
		if f.end.IsZero() {
			out[ch] = f.kind
		}
	}
	return out
}
