package bridge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// gateHandler discards logs, but blocks the goroutine that logs msg (once)
// until proceed is closed, after closing entered.
type gateHandler struct {
	msg     string
	once    *sync.Once
	entered chan struct{}
	proceed chan struct{}
}

func (g gateHandler) Enabled(context.Context, slog.Level) bool { return true }
func (g gateHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == g.msg {
		g.once.Do(func() {
			close(g.entered)
			<-g.proceed
		})
	}
	return nil
}
func (g gateHandler) WithAttrs([]slog.Attr) slog.Handler { return g }
func (g gateHandler) WithGroup(string) slog.Handler      { return g }

// Regression test for the safety review's M1. trip() used to store
// tripped=true BEFORE it forced the relays:
// trip() stores tripped=true BEFORE it forces the relays. A loop that
// resumes in that window sees tripped, applies the hazard and calls
// reset() (unforce, tripped=false); the watchdog then forces every relay
// off with nobody left to unforce them: every door is stuck unpowered until
// the process restarts (maglocks never relock, strikes never open), while
// the bridge reports itself healthy.
func TestWatchdogTripRacingTheLoopsResetLeavesNoRelayForced(t *testing.T) {
	g := gateHandler{msg: "control loop stopped responding: forcing every relay off", once: &sync.Once{},
		entered: make(chan struct{}), proceed: make(chan struct{})}
	var proceedOnce sync.Once
	proceed := func() { proceedOnce.Do(func() { close(g.proceed) }) }
	t.Cleanup(proceed)
	h := newHarnessWith(t, nil, func(h *harness) { h.log = slog.New(g) })
	h.ready()

	release := make(chan struct{})
	var relOnce sync.Once
	rel := func() { relOnce.Do(func() { close(release) }) }
	t.Cleanup(rel)
	h.b.events <- evFunc(func(*loop) { <-release }) // the loop stalls
	select {
	case <-g.entered: // tripped is stored; no relay forced yet
	case <-time.After(wait):
		t.Fatal("the watchdog did not trip")
	}
	rel() // the loop resumes now, as a loop stalled for just over loop_timeout does
	testbroker.Eventually(t, wait, func() bool { return !h.b.wd.tripped.Load() }, "the loop reset the trip")
	proceed() // the watchdog goes on and forces every relay off

	// No hazard is left, the loop is healthy: the maglock must relock after
	// relock_delay.
	h.waitPower("0", true, wait, "the maglock relocks once the loop is healthy again (it stays forced off)")
}

// stuckLog is a log sink that blocks every record while stuck is set: a
// stderr pipe that is full because journald is stalled (a slow or full SD
// card, journald restarting).
type stuckLog struct {
	stuck   *atomic.Bool
	release chan struct{}
}

func (s stuckLog) Enabled(context.Context, slog.Level) bool { return true }
func (s stuckLog) Handle(context.Context, slog.Record) error {
	if s.stuck.Load() {
		<-s.release
	}
	return nil
}
func (s stuckLog) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s stuckLog) WithGroup(string) slog.Handler      { return s }

// Regression test for the safety review's S1: the watchdog logged before it forced the
// relays off. When logging blocks (the loop is stuck in a log write, which
// is why the watchdog trips), the watchdog blocks in the same sink and
// never forces anything off: a maglock stays powered with the loop dead.
// (Its audit records too go through the log, after the relays.)
func TestWatchdogReleasesWhileTheLogSinkIsBlocked(t *testing.T) {
	var stuck atomic.Bool
	sink := stuckLog{stuck: &stuck, release: make(chan struct{})}
	h := newHarnessWith(t, nil, func(h *harness) { h.log = slog.New(sink) })
	h.ready()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { stuck.Store(false); close(sink.release) }) })
	stuck.Store(true)
	h.c.Publish(h.topic("fs", "set"), "BOGUS", false) // rejected, logged: the loop blocks in the log
	h.waitPower("0", false, wait, "the watchdog releases the maglock while the loop is stuck in a log write")
}
