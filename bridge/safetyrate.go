package bridge

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Safety records go to their own audit files, which no command can rotate
// (audit.Safety), but a source that flips its alarm ON and OFF (or a
// hazard that one origin raises and clears) again and again could still
// fill them and rotate out everyone else's. So changes of an alarm source,
// and hazards raised or cleared, are recorded in full up to safetyBurst a
// minute for each origin; the rest of that origin's minute is counted and
// recorded once, as a summary naming the last state, when the minute is
// over. The key is the origin, so one flapping source never silences
// another: the first change of every other source, and the hazard it
// raises, are recorded in full. Latch, reset, relay, lockdown, code and
// drill records are never summarised: each of them takes a person, a timer
// or the latch to repeat. The safety files then grow by at most
// safetyBurst records a minute for each origin that changes state.
const (
	safetyBurst = 10
	// safetyKeys bounds the windows of one minute; origins beyond it share
	// one window.
	safetyKeys = 256
)

type safetyWindow struct {
	minute time.Time
	full   int
	quiet  map[string]int // outcome → count
	last   string         // outcome of the last quiet record
	kind   string
	what   string // the hazard, or the alarm source
	origin string
}

// safetyLimiter keeps one window per kind, hazard and origin.
type safetyLimiter struct {
	windows map[string]*safetyWindow
}

// allow reports whether e may be recorded in full; if not, it is counted
// for the summary. A window of an earlier minute with quiet records is
// returned to be recorded first.
func (s *safetyLimiter) allow(now time.Time, e auditEvent) (bool, *safetyWindow) {
	if s.windows == nil {
		s.windows = map[string]*safetyWindow{}
	}
	key := e.Kind + "\x00" + e.Hazard + "\x00" + e.Origin
	if _, ok := s.windows[key]; !ok && len(s.windows) >= safetyKeys {
		key, e.Origin = "other", "(more origins)"
	}
	minute := now.Truncate(rejectInterval)
	w := s.windows[key]
	var closed *safetyWindow
	if w == nil || !w.minute.Equal(minute) {
		if w != nil && len(w.quiet) > 0 {
			closed = w
		}
		w = &safetyWindow{minute: minute, kind: e.Kind, what: e.Hazard, origin: e.Origin}
		s.windows[key] = w
	}
	if w.full < safetyBurst {
		w.full++
		return true, closed
	}
	if w.quiet == nil {
		w.quiet = map[string]int{}
	}
	w.quiet[e.Outcome]++
	w.last = e.Outcome
	return false, closed
}

// due returns (and forgets) the windows of minutes before now's, those with
// quiet records in key order.
func (s *safetyLimiter) due(now time.Time) []*safetyWindow {
	minute := now.Truncate(rejectInterval)
	var out []*safetyWindow
	for _, k := range slices.Sorted(maps.Keys(s.windows)) {
		if w := s.windows[k]; w.minute.Before(minute) {
			if len(w.quiet) > 0 {
				out = append(out, w)
			}
			delete(s.windows, k)
		}
	}
	return out
}

// summary is the record of a window's quiet records.
func (w *safetyWindow) summary() auditEvent {
	var counts []string
	n := 0
	for _, o := range slices.Sorted(maps.Keys(w.quiet)) {
		counts = append(counts, fmt.Sprintf("%s ×%d", o, w.quiet[o]))
		n += w.quiet[o]
	}
	return auditEvent{Kind: w.kind, Hazard: w.what, Outcome: "summary", Cause: "repeated",
		Detail: fmt.Sprintf("%d more %s records from %s in the minute from %s UTC, not recorded one by one (%s); the last: %s",
			n, w.kind, w.origin, w.minute.UTC().Format("2006-01-02 15:04"), strings.Join(counts, ", "), w.last),
		Origin: w.origin}
}

// recordSafety records e, an alarm source's change or a hazard raised or
// cleared, in full or counted for its origin's summary; its log line goes
// with it. It reports whether e was recorded in full.
func (l *loop) recordSafety(e auditEvent, logLine func()) bool {
	full, closed := l.safetyRate.allow(l.now(), e)
	if closed != nil {
		l.recordSafetySummary(closed)
	}
	if !full {
		return false
	}
	l.afterIO(logLine)
	l.recordLogged(e)
	return true
}

func (l *loop) recordSafetySummary(w *safetyWindow) {
	e := w.summary()
	l.afterIO(func() {
		l.log.Warn("repeated safety records summarised", "kind", e.Kind, "origin", e.Origin, "detail", e.Detail)
	})
	l.recordLogged(e)
}

// reportSafetySummaries records the summaries of minutes that are over.
func (l *loop) reportSafetySummaries(now time.Time) {
	for _, w := range l.safetyRate.due(now) {
		l.recordSafetySummary(w)
	}
}
