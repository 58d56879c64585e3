package bridge

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
)

// The loop fixture: tests that drive the loop by hand, without a broker or
// Run, build it with newTestLoop and move time with its fake clock. (Tests
// against a real broker use harness_test.go.)

// testStart is the time a test's fake clock starts at.
var testStart = time.Unix(1_800_000_000, 0)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// loopSetup is what newTestLoop builds a loop from; options change it.
type loopSetup struct {
	cfg      *config.Config
	clk      *fakeClock
	log      *slog.Logger
	lax      bool
	unlinked bool
	evaluate bool
	queue    bool
	idle     bool
}

// A loopOption changes how newTestLoop builds its loop.
type loopOption func(*loopSetup)

// newTestLoop opens a bridge on testConfig (a fail-safe door "fs" and a
// fail-secure door "fsec" on sim relays), validated, with a fake clock at
// testStart, and returns its loop and the clock. The loop is linked
// (connected, subscribed, heartbeat just in) but not running: the test
// calls its handlers and moves the clock itself. A bridge on the state_dir
// of an earlier one in the test is that bridge restarted (restartOpen). It
// is closed when the test ends.
func newTestLoop(tb testing.TB, opts ...loopOption) (*loop, *fakeClock) {
	tb.Helper()
	s := loopSetup{cfg: testConfig("tcp://127.0.0.1:1"), clk: &fakeClock{t: testStart}}
	for _, o := range opts {
		o(&s)
	}
	if err := s.cfg.Validate(); err != nil && !s.lax {
		tb.Fatalf("test config: %v", err)
	}
	if s.log == nil {
		s.log = testLogger(tb)
	}
	b, err := restartOpen(s.cfg, Options{Log: s.log, Clock: s.clk, Version: "test",
		Drivers: map[string]drivers.Driver{"sim": sim.New(sim.Options{})}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close) // opened, never run: its relay writers stop
	l := newLoop(b)
	if s.queue {
		l.mq = queueLink(b, publishQueue)
	}
	if !s.unlinked {
		l.link()
	}
	if s.evaluate {
		l.evaluate("startup")
		l.flushLater()
	}
	if s.idle {
		l.makeIdle(tb)
	}
	return l, s.clk
}

// withClock runs the loop on clk: a test that restarts the bridge passes
// the first loop's clock to the next.
func withClock(clk *fakeClock) loopOption { return func(s *loopSetup) { s.clk = clk } }

// withConfig changes the config (nil changes nothing).
func withConfig(mutate func(*config.Config)) loopOption {
	return func(s *loopSetup) {
		if mutate != nil {
			mutate(s.cfg)
		}
	}
}

// withAlarms replaces the alarm sources.
func withAlarms(alarms ...config.Alarm) loopOption {
	return func(s *loopSetup) { s.cfg.Alarms = alarms }
}

// withStateDir keeps the bridge's state in dir.
func withStateDir(dir string) loopOption {
	return func(s *loopSetup) { s.cfg.Bridge.StateDir = dir }
}

// withoutLatch sets alarm_latch: false: a cleared alarm relocks without a
// RESET.
func withoutLatch() loopOption {
	return func(s *loopSetup) { s.cfg.Watchdog.AlarmLatch = false }
}

// unvalidated runs the bridge on a config the validator refuses: one that
// leaves out what the test does not use, or stretches a timeout past what
// is allowed to keep its deadline out of the way.
func unvalidated() loopOption { return func(s *loopSetup) { s.lax = true } }

// withLog is the bridge's logger (else testLogger).
func withLog(log *slog.Logger) loopOption { return func(s *loopSetup) { s.log = log } }

// unlinked leaves the link down: never connected, nothing proven.
func unlinked() loopOption { return func(s *loopSetup) { s.unlinked = true } }

// evaluated evaluates once and runs the deferred work, as Run starts.
func evaluated() loopOption { return func(s *loopSetup) { s.evaluate = true } }

// withPublishQueue sends the loop's publishes to a queue (l.mq.queue)
// that the test empties; without it they go nowhere.
func withPublishQueue() loopOption { return func(s *loopSetup) { s.queue = true } }

// idle brings the loop to the state an idle bridge spends its life in: no
// hazard, the link proven and a heartbeat just sent and echoed.
func idle() loopOption { return func(s *loopSetup) { s.idle = true } }

func (l *loop) makeIdle(tb testing.TB) {
	tb.Helper()
	clk := l.b.clock.(*fakeClock)
	l.alarm("OFF")
	for i := range l.alarms {
		l.alarms[i].beatAt = clk.t // a supervised source has just said it lives
	}
	for i := range l.mqttPower { // and every power source that mains are on
		p := &l.mqttPower[i]
		l.onPowerMessage(p, evMessage{topic: p.cfg.Topic, payload: []byte(p.cfg.PayloadOK)})
	}
	l.evaluate("test") // the source is proven: the hazard clears...
	l.settle(clk)      // ...and stops holding after relock_delay
	if l.effective.Any() || !l.linkHealthy {
		tb.Fatalf("not idle: hazards %v, link healthy %v", l.effective, l.linkHealthy)
	}
	l.hbSentAt, l.hbRecvAt = clk.t, clk.t
	if l.busy() {
		tb.Fatal("an idle loop reports busy")
	}
}

// queueLink is an MQTT link that only queues: the test reads and empties
// its queue of size n.
func queueLink(b *Bridge, n int) *mqttLink {
	return &mqttLink{queue: make(chan pubMsg, n), m: b.m, topics: b.topics, done: make(chan struct{})}
}

// link marks the broker link as up and just proven.
func (l *loop) link() {
	l.connected, l.subscribed, l.hbRecvAt = true, true, l.now()
}

// send hands the loop a message, as MQTT would.
func (l *loop) send(topic, payload string, retained bool) {
	l.onMessage(evMessage{topic: topic, payload: []byte(payload), retained: retained})
}

// alarm hands the loop a retained message of the first alarm source, with
// the link proven, and waits until the relays are written.
func (l *loop) alarm(payload string) {
	l.link()
	l.send(l.b.cfg.Alarms[0].Topic, payload, true)
	l.waitRelays(wait, "relay")
}

// settle lets relock_delay pass with the link healthy, so that cleared
// hazards stop holding the doors.
func (l *loop) settle(clk *fakeClock) {
	clk.t = clk.t.Add(l.b.cfg.Watchdog.RelockDelay)
	l.link()
	l.evaluate("test")
	l.waitRelays(wait, "relay")
}

// liveStateDirs is the last bridge restartOpen opened on each state_dir.
var liveStateDirs sync.Map

// restartOpen opens a bridge as a restart of the last one restartOpen
// opened on the same state_dir, which tests keep: that process is gone,
// and so is its lock on state_dir.
func restartOpen(cfg *config.Config, opts Options) (*Bridge, error) {
	dir := cfg.Bridge.StateDir
	if dir == "" {
		return Open(cfg, opts)
	}
	if prev, ok := liveStateDirs.LoadAndDelete(dir); ok {
		prev.(*Bridge).state.unlock()
	}
	b, err := Open(cfg, opts)
	if err == nil {
		liveStateDirs.Store(dir, b)
	}
	return b, err
}
