package mqttclient

import "sync"

// Reporter logs each distinct reason a broker cannot be reached once,
// not once per retry, until a connection succeeds. Every attempt is logged
// at debug level.
type Reporter struct {
	log   func(broker, reason string)
	debug func(broker, reason string)
	mu    sync.Mutex
	seen  map[string]bool
	last  string // the broker that accepted the latest connection
}

// NewReporter returns a Reporter that logs a new reason with log and
// every attempt with debug.
func NewReporter(log, debug func(broker, reason string)) *Reporter {
	return &Reporter{log: log, debug: debug, seen: map[string]bool{}}
}

// Report takes the outcome of one attempt (Settings.Report).
func (r *Reporter) Report(broker string, err error) {
	if err == nil {
		r.mu.Lock()
		r.last = broker
		r.mu.Unlock()
		return
	}
	reason := ExplainConnectError(err)
	r.mu.Lock()
	key := broker + "\x00" + reason
	first := !r.seen[key]
	r.seen[key] = true
	r.mu.Unlock()
	r.debug(broker, reason)
	if first {
		r.log(broker, reason)
	}
}

// Connected forgets what was logged, so that the next failure is news
// again, and returns the broker that accepted the connection.
func (r *Reporter) Connected() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.seen)
	return r.last
}
