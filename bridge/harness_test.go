package bridge

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/sdnotify"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Timings for end-to-end tests: short, so the suite is quick, but each
// outcome is still awaited with a deadline, never assumed after a sleep.
const (
	testHeartbeatInterval = 100 * time.Millisecond
	testHeartbeatTimeout  = 500 * time.Millisecond
	testRelockDelay       = 300 * time.Millisecond
	wait                  = 5 * time.Second // deadline for an expected outcome
)

// harness runs one bridge against a real broker, with sim relays the test
// can read, and a test MQTT client that sees everything.
type harness struct {
	t      *testing.T
	broker *testbroker.Broker
	cfg    *config.Config
	sim    *sim.Driver
	b      *Bridge
	c      *testbroker.Client
	cancel context.CancelFunc
	done   chan error
	// notifier, when set before start, is the bridge's systemd notifier.
	notifier *sdnotify.Notifier
	// log, when set before start, is the bridge's logger (else testLogger).
	log *slog.Logger
	// simOpts are the options of the "sim" driver; more are drivers
	// supplied besides it (both set before start).
	simOpts sim.Options
	more    map[string]drivers.Driver
}

// testConfig has a fail-safe door "fs" on channel 0 and a fail-secure door
// "fsec" on channel 1.
func testConfig(url string) *config.Config {
	cfg := config.Default()
	cfg.Bridge.ID = "t1"
	cfg.MQTT.URL = url
	cfg.MQTT.BaseTopic = "db"
	cfg.HTTP.Listen = ""
	cfg.Watchdog.HeartbeatInterval = testHeartbeatInterval
	cfg.Watchdog.HeartbeatTimeout = testHeartbeatTimeout
	cfg.Watchdog.RelockDelay = testRelockDelay
	// The longest allowed: a CI machine under -race load must not trip the
	// in-process watchdog by accident (TestWatchdog* stalls the loop on purpose).
	cfg.Watchdog.LoopTimeout = 2 * time.Second
	cfg.Drivers = []config.Driver{{ID: "sim", Type: "sim"}}
	cfg.Doors = []config.Door{
		{ID: "fs", Name: "Fire exit", FailMode: config.FailSafe, Relay: config.Line{Driver: "sim", Channel: "0"}, UnlockTime: time.Second, Egress: true},
		{ID: "fsec", Name: "Server room", FailMode: config.FailSecure, Relay: config.Line{Driver: "sim", Channel: "1"}, UnlockTime: time.Second},
	}
	cfg.Alarms = []config.Alarm{config.DefaultAlarm(cfg.MQTT.BaseTopic)}
	return &cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DOORBRIDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tail := &logTail{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bridge's log, its last %d kB:\n%s", logTailMax>>10, tail.String())
		}
	})
	return slog.New(slog.NewTextHandler(tail, nil))
}

// logTailMax is how much of its log a failed test shows: enough to see
// why (a dropped link, a hazard), not a flood's every rejection.
const logTailMax = 32 << 10

// logTail keeps the last logTailMax bytes written to it.
type logTail struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2*logTailMax { // trimmed now and then: a flood logs a lot
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-logTailMax:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf[max(0, len(l.buf)-logTailMax):])
}

// newHarness starts a broker, a watching client and a bridge. mutate may
// change the config before the bridge starts.
func newHarness(t *testing.T, mutate func(*config.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, mutate, nil)
}

// newHarnessWith is newHarness, and before may set the harness's driver
// options (simOpts, more) before the bridge starts.
func newHarnessWith(t *testing.T, mutate func(*config.Config), before func(*harness)) *harness {
	t.Helper()
	br := testbroker.Start(t)
	h := &harness{t: t, broker: br}
	h.c = testbroker.Connect(t, br.URL(), "watcher-"+t.Name())
	h.cfg = testConfig(br.URL())
	if mutate != nil {
		mutate(h.cfg)
	}
	if before != nil {
		before(h)
	}
	if err := h.cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	h.start()
	return h
}

// start opens and runs a bridge on h.cfg with a fresh sim driver.
func (h *harness) start() {
	h.t.Helper()
	h.sim = sim.New(h.simOpts)
	drvs := map[string]drivers.Driver{"sim": h.sim}
	for id, d := range h.more {
		drvs[id] = d
	}
	log := h.log
	if log == nil {
		log = testLogger(h.t)
	}
	b, err := Open(h.cfg, Options{
		Notifier:     h.notifier,
		Log:          log,
		Drivers:      drvs,
		TickInterval: 20 * time.Millisecond,
		Version:      "test",
	})
	if err != nil {
		h.t.Fatalf("Open: %v", err)
	}
	h.b = b
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- b.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

// stop stops the bridge and waits for Run to return.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Errorf("Run did not return within 10s of cancel")
	}
}

// stopDrained stops the bridge and waits until the watcher has its clean
// "offline": the bridge publishes it last, at QoS 1, after everything
// else, so every message it sent has reached the watcher too. A Mark taken
// after it separates the next bridge's messages from this one's (under
// load, the last of them reached the watcher after a Mark taken at stop).
func (h *harness) stopDrained() {
	h.t.Helper()
	mark := h.c.Mark()
	h.stop()
	avail := h.cfg.MQTT.BaseTopic + "/" + h.cfg.Bridge.ID + "/availability"
	h.c.WaitForAfter(mark, avail, wait, func(m testbroker.Message) bool { return string(m.Payload) == "offline" })
}

func (h *harness) topic(door, leaf string) string {
	return h.cfg.MQTT.BaseTopic + "/" + h.cfg.Bridge.ID + "/" + door + "/" + leaf
}

func (h *harness) alarmTopic() string { return h.cfg.Alarms[0].Topic }

// power reads a door's lock power from the sim relay (active high).
func (h *harness) power(ch string) bool { return h.sim.Levels()[ch] }

func (h *harness) waitPower(ch string, want bool, within time.Duration, why string) {
	h.t.Helper()
	testbroker.Eventually(h.t, within, func() bool { return h.power(ch) == want },
		"relay %s: want power %v: %s", ch, want, why)
}

// ready clears the alarm and waits until both doors are in their normal
// locked state: fail-safe powered, fail-secure unpowered.
func (h *harness) ready() {
	h.t.Helper()
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitPower("0", true, wait, "fail-safe door locks once the alarm is clear and the link is proven")
	h.c.WaitPayload(h.topic("fs", "state"), StateLocked, wait)
	h.c.WaitPayload(h.topic("fsec", "state"), StateLocked, wait)
	if h.power("1") {
		h.t.Fatalf("fail-secure door powered after start")
	}
}

// state returns the loop's snapshot of a door.
func (h *harness) door(id string) DoorView {
	h.t.Helper()
	if s := h.b.State(); s != nil {
		for _, d := range s.Doors {
			if d.ID == id {
				return *d
			}
		}
	}
	h.t.Fatalf("door %q not in snapshot", id)
	return DoorView{}
}

// waitHazard waits until the loop's snapshot lists hazard h.
func (h *harness) waitHazard(name string) {
	h.t.Helper()
	testbroker.Eventually(h.t, wait, func() bool {
		s := h.b.State()
		return s != nil && slices.Contains(s.Hazards, name)
	}, "hazard %q active", name)
}
