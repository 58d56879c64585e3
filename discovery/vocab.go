package discovery

// causes are the values of a door's cause sensor (B/N/D/cause): why the lock
// is in its present state. The bridge publishes only these; HA ignores, with
// a warning, any value of an enum sensor that is not in its options.
var causes = []string{
	"normal",            // following its last LOCK/UNLOCK (locked after start)
	"lockdown",          // lockdown switch on
	"alarm",             // fire alarm released the door
	"broker",            // broker connection lost: door went to its safe state
	"power",             // power failure
	"startup",           // state taken at bridge start
	"shutdown",          // state taken at bridge stop
	"watchdog",          // control loop stalled: relays forced off
	"driver",            // relay driver failure
	"rex",               // request-to-exit input
	"alarm_supervision", // alarm source silent: treated as an alarm
	"momentary",         // OPEN: unlocked for unlock_time
}

// eventTypes are the event_type values of a door's event entity
// (B/N/D/event, JSON {"event_type": ...}, never retained).
var eventTypes = []string{
	"unlocked",
	"locked",
	"opened",
	"rejected_code",
	"released_by_hazard",
	"relocked",
	"lockout",
	"forced_open",
	"held_open",
	"release_failure",
}

// CauseOptions lists every value the per-door cause sensor may take. It
// returns a new slice on each call.
func CauseOptions() []string { return clone(causes) }

// EventTypes lists every event_type the per-door event entity accepts. It
// returns a new slice on each call.
func EventTypes() []string { return clone(eventTypes) }

func clone(s []string) []string { return append([]string(nil), s...) }

var failModes = []string{"fail_safe", "fail_secure"}
