package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// watchdog is the in-process watchdog: a goroutine independent of the control
// loop that forces every relay off when the loop has not checked in for
// timeout. It only ever writes "off", through each door's relay writer
// (relays.go): every relay at once, none waiting on another's board.
type watchdog struct {
	b       *Bridge
	timeout time.Duration
	log     *slog.Logger
	m       *metrics
	last    atomic.Int64 // elapsed() at the last check-in, in ns
	tripped atomic.Bool
	done    chan struct{}

	// elapsed is the monotonic time since the watchdog was made (a fake
	// one in tests).
	elapsed func() time.Duration
	// timer wakes run: every check-in re-arms it for the check-in plus
	// timeout, so a healthy loop never wakes the watchdog at all (it did
	// once a loop_timeout/2, a wake-up of its own each second that an idle
	// bridge pays for, issue 13). wake is its channel.
	timer interface{ Reset(time.Duration) bool }
	wake  <-chan time.Time
}

func newWatchdog(b *Bridge, timeout time.Duration) *watchdog {
	start := time.Now()
	t := time.NewTimer(timeout)
	w := &watchdog{b: b, timeout: timeout, log: b.rootLog.With("component", "watchdog"), m: b.m, done: make(chan struct{}),
		elapsed: func() time.Duration { return time.Since(start) }, timer: t, wake: t.C}
	w.checkin()
	return w
}

// checkin is the loop's sign of life. The timer is re-armed before the
// check-in is stored: it can then only fire early (and look again), never
// later than the check-in plus timeout.
func (w *watchdog) checkin() {
	w.timer.Reset(w.timeout + time.Millisecond)
	w.last.Store(int64(w.elapsed()))
}

func (w *watchdog) sinceCheckin() time.Duration {
	return w.elapsed() - time.Duration(w.last.Load())
}

func (w *watchdog) healthy() bool { return w.sinceCheckin() <= w.timeout && !w.tripped.Load() }

func (w *watchdog) run(ctx context.Context) {
	defer close(w.done)
	// Armed from here, not from newWatchdog: a bridge opened long before it
	// runs is judged from its loop's first check-in, as it always was.
	w.timer.Reset(w.timeout)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			w.timer.Reset(w.fired())
		}
	}
}

// fired trips the watchdog when the loop's last check-in is more than
// timeout old, and returns when to look again: when that check-in will be
// timeout old (a check-in meanwhile re-arms the timer later), or, while
// tripped or still overdue, in a fraction of the timeout.
func (w *watchdog) fired() time.Duration {
	since := w.sinceCheckin()
	if since > w.timeout && !w.tripped.Load() {
		w.trip()
	}
	next := w.timeout - since + time.Millisecond
	if next <= 0 || w.tripped.Load() {
		next = w.timeout / 8
	}
	return next
}

// trip forces every relay off without the loop. The relay writers write
// them all at once and retry the failed ones while the trip lasts (they
// refuse "on" until the loop resets the trip). It waits for them at most
// a write deadline, then reports each in the log and the audit file.
//
// The relays are forced before anything that can block (a log line waits
// on stderr, which a stalled journald can block for good) and before
// tripped is stored: a loop that resumes and sees tripped resets a trip
// whose relays are all forced already, never one whose force is still to
// come (that force would outlive the reset, and nothing would lift it).
func (w *watchdog) trip() {
	since := w.sinceCheckin()
	seqs := w.b.forceAll()
	w.tripped.Store(true)
	w.m.hazardsRaised.WithLabelValues(HazardWatchdog.String()).Inc()
	w.m.hazardActive.WithLabelValues(HazardWatchdog.String()).Set(1)
	w.log.Error("control loop stopped responding: forcing every relay off", "since_checkin", since.Round(time.Millisecond))
	w.b.reportForced(seqs, HazardWatchdog.String())
}

// reset ends a trip once the loop applied the watchdog hazard itself.
func (w *watchdog) reset() {
	for _, d := range w.b.doors {
		d.relay.unforce()
	}
	w.tripped.Store(false)
}

// forceOff forces every relay off through its writer, then reports each
// (reportForced). cause is the audit's cause.
func (b *Bridge) forceOff(cause string) { b.reportForced(b.forceAll(), cause) }

// forceAll forces every relay off through its writer and returns each
// force's request number. It never blocks: the writers do the writing.
func (b *Bridge) forceAll() []uint64 {
	seqs := make([]uint64, len(b.doors))
	for i, d := range b.doors {
		seqs[i] = d.relay.force()
	}
	return seqs
}

// reportForced waits until each forced write seqs[i] is written or has
// failed, at most a write deadline, and reports each one to the log and
// the audit file directly (the loop may never come back). The writers
// retry the failed ones until unforced. A relay the loop unforced in the
// meantime (it came back and reset the trip) is the loop's again.
func (b *Bridge) reportForced(seqs []uint64, cause string) {
	deadline := time.Now().Add(writeDeadline + 50*time.Millisecond)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !b.allOff(seqs) && time.Now().Before(deadline) {
		<-tick.C // a bounded poll: the loop's notifications are the loop's
	}
	for i, d := range b.doors {
		done, err := d.relay.offSince(seqs[i])
		if done {
			off := false
			b.audit.recordLocal(auditEvent{Kind: "relay", Door: d.cfg.ID, Energized: &off, Cause: cause, Origin: cause,
				Outcome: map[bool]string{true: "locked", false: "unlocked"}[d.mode.Locked(false)]})
			continue
		}
		if !d.relay.isForced() {
			continue
		}
		if err == nil {
			err = fmt.Errorf("relay write: %w within %s", errNoAnswer, writeDeadline)
		}
		b.log.Error("relay could not be forced off: door JAMMED, retried", "door", d.cfg.ID, "cause", cause, "err", err)
		b.audit.recordLocal(auditEvent{Kind: "driver", Door: d.cfg.ID, Outcome: "fault", Detail: err.Error(), Origin: cause})
	}
}

// allOff reports whether every forced write seqs[i] is written off.
func (b *Bridge) allOff(seqs []uint64) bool {
	for i, d := range b.doors {
		if done, _ := d.relay.offSince(seqs[i]); !done {
			return false
		}
	}
	return true
}
