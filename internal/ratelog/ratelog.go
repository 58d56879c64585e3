// Package ratelog summarises a repeated event in the log: a flood must not
// flood the log too.
package ratelog

import (
	"sync"
	"time"
)

// Every counts an event and says when to log it: at most once every Period,
// with how many happened since the last line. Safe for concurrent use.
type Every struct {
	Period time.Duration

	mu     sync.Mutex
	count  int
	logged time.Time
}

// Note counts one event at now; when a line is due it returns how many to
// report (this one included) and true.
func (e *Every) Note(now time.Time) (n int, due bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	if now.Sub(e.logged) < e.Period {
		return 0, false
	}
	n, e.count, e.logged = e.count, 0, now
	return n, true
}
