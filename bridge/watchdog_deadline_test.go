package bridge

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"pgregory.net/rapid"
)

// fakeWDTimer is the watchdog's timer on simulated time: Reset arms it for
// now + d.
type fakeWDTimer struct {
	now *time.Duration
	at  time.Duration
}

func (t *fakeWDTimer) Reset(d time.Duration) bool { t.at = *t.now + d; return true }

// simWatchdog is a watchdog on simulated monotonic time, over a bridge
// without doors (a trip forces nothing and reports nothing), with run's
// start already done.
func simWatchdog(timeout time.Duration) (*watchdog, *fakeWDTimer, *time.Duration) {
	now := new(time.Duration)
	tm := &fakeWDTimer{now: now}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := &Bridge{log: log}
	w := &watchdog{b: b, timeout: timeout, log: log, m: newMetrics(prometheus.NewRegistry()), done: make(chan struct{}),
		elapsed: func() time.Duration { return *now }, timer: tm}
	w.checkin()
	w.timer.Reset(w.timeout) // run's start
	return w, tm, now
}

// The watchdog is woken by a timer that each check-in re-arms (issue 13:
// no wake-up of its own while the loop is healthy). Whatever the loop's
// pace, a check-in that is overdue must still trip it by the check-in +
// loop_timeout + 1 ms, as the timer that looked on its own did; a loop
// that keeps within loop_timeout must never trip it, nor wake it.
func TestWatchdogNeverMissesAnOverdueCheckin(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		timeout := time.Duration(rapid.IntRange(100, 5000).Draw(rt, "timeout_ms")) * time.Millisecond
		w, tm, now := simWatchdog(timeout)
		// Gaps between check-ins, in µs: mostly healthy, some overdue
		// (the 1 ms of slack after timeout is neither: the timer and the
		// check-in race there, as they always did).
		gap := rapid.Custom(func(rt *rapid.T) time.Duration {
			if rapid.IntRange(0, 9).Draw(rt, "overdue") == 0 {
				return timeout + time.Millisecond + time.Duration(rapid.Int64Range(1, int64(3*timeout/time.Microsecond)).Draw(rt, "late_us"))*time.Microsecond
			}
			return time.Duration(rapid.Int64Range(0, int64(timeout/time.Microsecond)).Draw(rt, "ok_us")) * time.Microsecond
		})
		gaps := rapid.SliceOfN(gap, 1, 40).Draw(rt, "gaps")
		last := time.Duration(0)
		for i, g := range gaps {
			next := last + g
			fires, trippedAt := 0, time.Duration(-1)
			for tm.at < next { // the timer fires before the next check-in
				*now = tm.at
				was := w.tripped.Load()
				w.timer.Reset(w.fired())
				fires++
				if !was && w.tripped.Load() {
					trippedAt = *now
				}
				if tm.at <= *now {
					rt.Fatalf("gap %d: the watchdog re-armed for %v, not after now %v", i, tm.at, *now)
				}
			}
			switch {
			case g > timeout+time.Millisecond && trippedAt < 0:
				rt.Fatalf("gap %d: %v without a check-in (timeout %v), and no trip", i, g, timeout)
			case g > timeout+time.Millisecond && trippedAt > last+timeout+time.Millisecond:
				rt.Fatalf("gap %d: tripped at %v, %v after the overdue check-in's deadline", i, trippedAt, trippedAt-(last+timeout+time.Millisecond))
			case g <= timeout && trippedAt >= 0:
				rt.Fatalf("gap %d: tripped though the loop checked in after %v (timeout %v)", i, g, timeout)
			case g <= timeout && fires > 0 && !w.tripped.Load():
				rt.Fatalf("gap %d: a healthy loop (%v between check-ins) woke the watchdog %d times", i, g, fires)
			}
			*now = next
			w.checkin()
			if w.tripped.Load() {
				w.reset() // the loop resumed and applied the hazard
			}
			last = next
		}
	})
}
