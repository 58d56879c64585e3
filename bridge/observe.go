package bridge

import "time"

// Hooks of the control loop that feed the metrics and the drill reminder;
// they observe, and never change a decision.

// startObserving loads the last release drill. (The start-up hazards rise,
// and their clocks start, in the first evaluation.)
func (l *loop) startObserving() {
	l.drill.last = l.b.loadDrill()
}

// hazardRaised and hazardCleared time each hazard for
// doorbridge_hazard_duration_seconds.
func (l *loop) hazardRaised(h Hazard) { l.hazardSince[h] = l.now() }

func (l *loop) hazardCleared(h Hazard) {
	if since := l.hazardSince[h]; !since.IsZero() {
		l.b.m.hazardDuration.WithLabelValues(h.String()).Observe(l.now().Sub(since).Seconds())
	}
	l.hazardSince[h] = time.Time{}
}

// afterWrites runs once an evaluation has written and flushed the relays.
// When a hazard rose in it and relays were written, the time since the
// evaluation started (start, from the real clock) is the release latency.
func (l *loop) afterWrites(rose Hazards, wrote bool, start time.Time, armed []*door, origin string) {
	if rose.Any() && wrote {
		l.b.m.hazardRelease.Observe(time.Since(start).Seconds())
	}
	l.noteDrill(rose, armed, origin)
}
