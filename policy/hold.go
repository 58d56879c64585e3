package policy

import "time"

// Held is the state of the relock hold: the hazards every door sees, and
// since when no raw hazard has been active.
type Held struct {
	// Hazards in effect: the raw hazards while any is active, then the last
	// ones until relock_delay of continuous health has passed.
	Hazards Hazards
	// HealthySince is when an evaluation first saw no raw hazard after the
	// last one (zero while a raw hazard is active).
	HealthySince time.Time
}

// Hold steps the relock hold (R1, R2): while any raw hazard is active the
// raw set is in effect; after the last one clears, the hazards stay in
// effect until relockDelay of continuous health, measured from the first
// evaluation that saw none. A hazard rising meanwhile starts it over.
func Hold(prev Held, raw Hazards, now time.Time, relockDelay time.Duration) Held {
	switch {
	case raw.Any():
		return Held{Hazards: raw}
	case prev.Hazards.Any():
		if prev.HealthySince.IsZero() {
			prev.HealthySince = now
		}
		if now.Sub(prev.HealthySince) >= relockDelay {
			prev.Hazards = 0
		}
	}
	return prev
}
