package power

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Watch polls src every interval until ctx ends and calls report on every
// change of the derived state, and once at the first reading.
//
// The derived state is Lost when the source says so, and also Lost (with Err
// set) when the source has not been read successfully for longer than
// timeout. A failed read before that keeps the last state, so one lost packet
// does not release the doors. At start, with no good reading yet, the state
// is unknown: nothing is reported until the first good reading, or until
// timeout passes, which reports Lost with the error.
//
// A change is a change of Lost or of whether Err is set; a new Detail or a
// different error alone is not reported. The timeout runs on its own timer,
// so a Poll that hangs cannot delay the Lost report.
//
// Polls never overlap: a tick that comes while a Poll is still running is
// skipped. Each Poll gets a context that ends after timeout. Watch returns
// after ctx ends and any Poll in progress has returned. report is called
// from Watch's goroutine and must not block for long (hand the Status off to
// a buffered channel). Watch panics if interval or timeout is not positive.
func Watch(ctx context.Context, src Source, interval, timeout time.Duration, report func(Status)) {
	if interval <= 0 || timeout <= 0 {
		panic(fmt.Sprintf("power: Watch: interval (%s) and timeout (%s) must be positive", interval, timeout))
	}
	name := src.Name()

	type reading struct {
		lost   bool
		detail string
		err    error
	}
	// One Poll at a time, so one slot is enough for its result to be sent
	// even after Watch stopped listening.
	results := make(chan reading, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	polling := false
	poll := func() {
		polling = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			lost, detail, err := src.Poll(pctx)
			results <- reading{lost, detail, err}
		}()
	}

	var (
		known   bool   // something was reported
		cur     Status // what was last reported
		lastErr error  // the last failure since the last good reading
	)
	emit := func(s Status) {
		if known && s.Lost == cur.Lost && (s.Err != nil) == (cur.Err != nil) {
			return
		}
		known, cur = true, s
		report(s)
	}

	// stale fires when no good reading came for timeout; every good reading
	// pushes it back.
	stale := time.NewTimer(timeout)
	defer stale.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()

	poll()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !polling {
				poll()
			}
		case r := <-results:
			polling = false
			if ctx.Err() != nil {
				return
			}
			if r.err != nil {
				lastErr = r.err
				continue
			}
			lastErr = nil
			stale.Reset(timeout)
			emit(Status{Source: name, Lost: r.lost, Detail: r.detail})
		case <-stale.C:
			if ctx.Err() != nil {
				return
			}
			err := lastErr
			if err == nil {
				err = fmt.Errorf("power: %s: no reading for %s", name, timeout)
			}
			// The state stays Lost until a good reading, which rearms stale.
			emit(Status{Source: name, Lost: true, Err: err})
		}
	}
}
