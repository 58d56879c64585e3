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
	start   time.Time
	last    atomic.Int64 // time since start of the last check-in, in ns (monotonic)
	tripped atomic.Bool
	done    chan struct{}
}

func newWatchdog(b *Bridge, timeout time.Duration) *watchdog {
	w := &watchdog{b: b, timeout: timeout, log: b.rootLog.With("component", "watchdog"), m: b.m, start: time.Now(), done: make(chan struct{})}
	w.checkin()
	return w
}

func (w *watchdog) checkin() { w.last.Store(int64(time.Since(w.start))) }

func (w *watchdog) sinceCheckin() time.Duration {
	return time.Since(w.start) - time.Duration(w.last.Load())
}

func (w *watchdog) healthy() bool { return w.sinceCheckin() <= w.timeout && !w.tripped.Load() }

func (w *watchdog) run(ctx context.Context) {
	defer close(w.done)
	// Sleep until the loop's last check-in would be timeout old, then look
	// again: one wake-up per loop_timeout while the loop is healthy, and a
	// trip as soon as a check-in is overdue (not up to a tick later).
	t := time.NewTimer(w.timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			since := w.sinceCheckin()
			if since > w.timeout && !w.tripped.Load() {
				w.trip()
			}
			next := w.timeout - since + time.Millisecond
			if next <= 0 || w.tripped.Load() {
				// Overdue (tripped, or the loop is still stuck): look again
				// in a fraction of the timeout.
				next = w.timeout / 8
			}
			t.Reset(next)
		}
	}
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
