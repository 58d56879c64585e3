package bridge

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
)

// watchdog is the in-process watchdog: a goroutine independent of the control
// loop that forces every relay off when the loop has not checked in for
// timeout. It only ever writes "off".
type watchdog struct {
	doors   []*door
	timeout time.Duration
	log     *slog.Logger
	m       *metrics
	start   time.Time
	last    atomic.Int64 // time since start of the last check-in, in ns (monotonic)
	tripped atomic.Bool
}

func newWatchdog(doors []*door, timeout time.Duration, log *slog.Logger, m *metrics) *watchdog {
	w := &watchdog{doors: doors, timeout: timeout, log: log.With("component", "watchdog"), m: m, start: time.Now()}
	w.checkin()
	return w
}

func (w *watchdog) checkin() { w.last.Store(int64(time.Since(w.start))) }

func (w *watchdog) sinceCheckin() time.Duration {
	return time.Since(w.start) - time.Duration(w.last.Load())
}

func (w *watchdog) healthy() bool { return w.sinceCheckin() <= w.timeout && !w.tripped.Load() }

func (w *watchdog) run(ctx context.Context) {
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

// trip writes every relay off, from this goroutine, without the loop.
func (w *watchdog) trip() {
	w.tripped.Store(true)
	w.m.watchdogTrips.WithLabelValues(HazardWatchdog.String()).Inc()
	w.m.hazardActive.WithLabelValues(HazardWatchdog.String()).Set(1)
	w.log.Error("control loop stopped responding: forcing every relay off", "since_checkin", w.sinceCheckin().Round(time.Millisecond))
	flushed := map[drivers.Driver]bool{}
	for _, d := range w.doors {
		if err := d.off(); err != nil {
			w.log.Error("watchdog could not turn relay off", "door", d.cfg.ID, "err", err)
		}
		if f, ok := d.drv.(drivers.Flusher); ok && !flushed[d.drv] {
			flushed[d.drv] = true
			_ = f.Flush()
		}
	}
}
