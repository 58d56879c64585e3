package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Sim input channels of the door-input tests (the relays are "0" and "1").
const (
	chContact     = "c0" // fs contact
	chRex         = "r0" // fs exit button
	chLockSense   = "s0" // fs lock sense
	chFsecContact = "c1"
	chFsecRex     = "r1"
	chPowerGood   = "pg"
)

// newInputHarness is newHarness for door inputs: mutate's config is
// validated, then short shortens timings below the config's minimums (a
// 1 s rex_time instead of 30 s) before the bridge starts.
func newInputHarness(t *testing.T, mutate, short func(*config.Config)) *harness {
	t.Helper()
	br := testbroker.Start(t)
	h := &harness{t: t, broker: br, c: testbroker.Connect(t, br.URL(), "watcher-"+t.Name()), cfg: testConfig(br.URL())}
	mutate(h.cfg)
	if err := h.cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	if short != nil {
		short(h.cfg)
	}
	h.start()
	return h
}

func line(ch string) *config.Line { return &config.Line{Driver: "sim", Channel: ch} }

// inputs returns the loop's last input outcome of a door.
func (h *harness) inputs(id string) DoorInputOutcome {
	h.t.Helper()
	ch := make(chan DoorInputOutcome, 1)
	select {
	case h.b.events <- evFunc(func(l *loop) { ch <- l.b.byID[id].io.out }):
	case <-time.After(wait):
		h.t.Fatalf("loop not taking events")
	}
	select {
	case o := <-ch:
		return o
	case <-time.After(wait):
		h.t.Fatalf("loop did not answer")
	}
	return DoorInputOutcome{}
}

// countEvents counts the events of type typ published for a door so far.
func (h *harness) countEvents(door, typ string) int {
	n := 0
	for _, m := range h.c.Messages(h.topic(door, "event")) {
		if eventIs(typ)(m) {
			n++
		}
	}
	return n
}

func eventIs(typ string) func(testbroker.Message) bool {
	return func(m testbroker.Message) bool {
		var e struct {
			EventType string `json:"event_type"`
		}
		return json.Unmarshal(m.Payload, &e) == nil && e.EventType == typ && !m.Retained
	}
}

// A door opened while locked is forced open: event within 1 s, problem
// flag until it closes; left open, it is also held open. The lock state is
// OPEN while the contact says so.
func TestForcedAndHeldOpen(t *testing.T) {
	h := newInputHarness(t, func(c *config.Config) {
		c.Doors[0].Contact = line(chContact)
		c.Doors[0].HeldOpenTime = config.MinHeldOpenTime
	}, func(c *config.Config) { c.Doors[0].HeldOpenTime = 500 * time.Millisecond })
	h.ready()
	h.c.WaitPayload(h.topic("fs", "contact"), "OFF", wait)
	h.c.WaitPayload(h.topic("fs", "forced"), "OFF", wait)
	h.c.WaitPayload(h.topic("fs", "held"), "OFF", wait)

	mark := h.c.Mark()
	opened := time.Now()
	h.sim.SetInput(chContact, true)
	ev := h.c.WaitForAfter(mark, h.topic("fs", "event"), wait, eventIs(EventForcedOpen))
	if d := ev.At.Sub(opened); d > time.Second {
		t.Fatalf("forced_open published %v after the door opened, want within 1 s", d)
	}
	h.c.WaitPayload(h.topic("fs", "forced"), "ON", wait)
	h.c.WaitPayload(h.topic("fs", "contact"), "ON", wait)
	if !h.power("0") {
		t.Fatalf("a forced door released its maglock")
	}
	// The lock entity reports the lock: still LOCKED, its power on. The
	// door's own state is the contact's.
	h.c.Sync(wait)
	if st := h.c.Messages(h.topic("fs", "state")); string(st[len(st)-1].Payload) != StateLocked {
		t.Fatalf("forced door with a powered lock reported %s, want %s", st[len(st)-1].Payload, StateLocked)
	}
	held := h.c.WaitForAfter(mark, h.topic("fs", "event"), wait, eventIs(EventHeldOpen))
	if d := held.At.Sub(opened); d < 500*time.Millisecond {
		t.Fatalf("held_open after %v, before held_open_time", d)
	}
	h.c.WaitPayload(h.topic("fs", "held"), "ON", wait)

	h.sim.SetInput(chContact, false)
	h.c.WaitPayload(h.topic("fs", "held"), "OFF", wait)
	h.c.WaitPayload(h.topic("fs", "forced"), "OFF", wait)
	h.c.WaitPayload(h.topic("fs", "contact"), "OFF", wait)
	h.c.WaitPayload(h.topic("fs", "state"), StateLocked, wait)

	// Released by a hazard, the door opens without a forced event.
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "alarm releases")
	forced := h.countEvents("fs", EventForcedOpen)
	h.sim.SetInput(chContact, true)
	h.c.WaitPayload(h.topic("fs", "contact"), "ON", wait)
	h.c.Sync(wait)
	if n := h.countEvents("fs", EventForcedOpen); n != forced {
		t.Fatalf("forced_open published while the alarm released the door")
	}
	if o := h.inputs("fs"); o.Forced {
		t.Fatalf("door released by the alarm flagged forced")
	}

	// An unreadable contact is unknown, never open or closed.
	h.sim.SetInputError(chContact, errors.New("cable cut"))
	h.c.WaitPayload(h.topic("fs", "contact"), "None", wait)
	h.sim.SetInputError(chContact, nil)
	h.c.WaitPayload(h.topic("fs", "contact"), "ON", wait)
}

// REX releases a fail-safe door locally, without a broker: pressed during
// an outage, it is taken at once and keeps the door released after the
// broker returns, for rex_time after the button lets go. A fail-secure
// door's REX never powers its strike during the outage (R1).
func TestRexDuringBrokerOutage(t *testing.T) {
	h := newInputHarness(t, func(c *config.Config) {
		c.Doors[0].Rex = line(chRex)
		c.Doors[1].Rex = line(chFsecRex)
	}, func(c *config.Config) { c.Doors[0].RexTime = time.Second })
	h.ready()
	h.broker.Kill()
	h.waitPower("0", false, wait, "broker loss releases the maglock")
	strikeWrites := len(h.sim.History("1"))

	h.sim.SetInput(chRex, true)
	h.sim.SetInput(chFsecRex, true)
	testbroker.Eventually(t, wait, func() bool { return h.inputs("fs").Rex }, "REX taken by the loop during the outage")
	if h.inputs("fsec").Rex {
		t.Fatalf("a fail-secure door's REX unlock started during the outage")
	}
	h.sim.SetInput(chFsecRex, false)

	h.broker.Restart()
	h.c.Publish(h.alarmTopic(), "OFF", true)
	// Hazards clear; the held button keeps the maglock released.
	h.c.WaitPayload(h.topic("fs", "cause"), CauseRex, 3*wait)
	h.c.WaitPayload(h.topic("fs", "state"), StateUnlocked, wait)
	if h.power("0") {
		t.Fatalf("maglock powered while the exit button is held")
	}
	mark := h.c.Mark()
	letGo := time.Now()
	h.sim.SetInput(chRex, false)
	locked := h.c.WaitForAfter(mark, h.topic("fs", "state"), wait, payloadIs(StateLocked))
	if d := locked.At.Sub(letGo); d < 900*time.Millisecond {
		t.Fatalf("relocked %v after the button let go, before rex_time (1s)", d)
	}
	for _, lvl := range h.sim.History("1")[strikeWrites:] {
		if lvl {
			t.Fatalf("the strike was powered by a REX pressed during the outage")
		}
	}
}

// With the broker up, REX on a fail-secure door unlocks it for unlock_time;
// a momentary OPEN relocks as soon as the door was opened and closed.
func TestRexFailSecureAndEarlyRelock(t *testing.T) {
	h := newInputHarness(t, func(c *config.Config) {
		c.Doors[1].Rex = line(chFsecRex)
		c.Doors[1].Contact = line(chFsecContact)
		c.Doors[1].UnlockTime = 5 * time.Second
	}, nil)
	h.ready()

	mark := h.c.Mark()
	h.c.Publish(h.topic("fsec", "set"), "OPEN", false)
	open := h.c.WaitForAfter(mark, h.topic("fsec", "state"), wait, payloadIs(StateOpen))
	h.waitPower("1", true, wait, "OPEN powers the strike")
	h.sim.SetInput(chFsecContact, true)
	h.c.WaitPayload(h.topic("fsec", "contact"), "ON", wait)
	h.sim.SetInput(chFsecContact, false)
	locked := h.c.WaitForAfter(mark, h.topic("fsec", "state"), wait, payloadIs(StateLocked))
	if d := locked.At.Sub(open.At); d > 3*time.Second {
		t.Fatalf("momentary OPEN lasted %v after the door opened and closed; want an early relock (unlock_time 5s)", d)
	}
	if h.power("1") {
		t.Fatalf("strike still powered after the early relock")
	}
	if o := h.inputs("fsec"); o.Forced {
		t.Fatalf("a door opened during OPEN was flagged forced")
	}

	h.sim.SetInput(chFsecRex, true)
	h.waitPower("1", true, wait, "REX unlocks the strike")
	h.c.WaitPayload(h.topic("fsec", "cause"), CauseRex, wait)
	h.sim.SetInput(chFsecRex, false)
	// The door opens through the REX window: no forced event.
	h.sim.SetInput(chFsecContact, true)
	h.c.WaitPayload(h.topic("fsec", "contact"), "ON", wait)
	h.sim.SetInput(chFsecContact, false)
	h.c.WaitPayload(h.topic("fsec", "contact"), "OFF", wait)
	h.c.Sync(wait)
	if n := h.countEvents("fsec", EventForcedOpen); n != 0 {
		t.Fatalf("forced_open for a door opened by OPEN or REX")
	}
}

// A maglock still sensed locked more than 2 s after its power went off is
// a release failure: problem flag and event, reported until it clears.
func TestLockSenseReleaseFailure(t *testing.T) {
	h := newInputHarness(t, func(c *config.Config) { c.Doors[0].LockSense = line(chLockSense) }, nil)
	h.ready()
	h.sim.SetInput(chLockSense, true) // bonded: fine while powered
	h.c.WaitPayload(h.topic("fs", "release_failure"), "OFF", wait)

	// Timed from before the command is sent (not from energized OFF, which
	// may reach the test late): the power cannot go off earlier.
	mark, sent := h.c.Mark(), time.Now()
	h.c.Publish(h.topic("fs", "set"), "UNLOCK", false)
	h.c.WaitForAfter(mark, h.topic("fs", "energized"), wait, payloadIs("OFF"))
	ev := h.c.WaitForAfter(mark, h.topic("fs", "event"), 2*wait, eventIs(EventReleaseFailure))
	if d := ev.At.Sub(sent); d < 1900*time.Millisecond {
		t.Fatalf("release_failure %v after power off, before 2 s", d)
	}
	h.c.WaitPayload(h.topic("fs", "release_failure"), "ON", wait)
	h.sim.SetInput(chLockSense, false)
	h.c.WaitPayload(h.topic("fs", "release_failure"), "OFF", wait)
}

// A power-good input feeds the power hazard: inactive releases the
// fail-safe doors within 1 s.
func TestPowerGoodInput(t *testing.T) {
	h := newInputHarness(t, func(c *config.Config) {
		c.Power = []config.PowerSource{{Type: config.PowerInput, Name: "psu", Driver: "sim", Channel: chPowerGood, ActiveLow: true,
			PollInterval: 50 * time.Millisecond, Timeout: time.Second}}
	}, nil)
	// active_low: low is power good, and a fresh sim input is low.
	h.ready()
	h.c.WaitPayload("db/t1/power/state", "ON", wait)
	h.sim.SetInput(chPowerGood, true)
	h.waitPower("0", false, time.Second, "power-good input lost releases within 1 s")
	h.c.WaitPayload(h.topic("fs", "cause"), "power", wait)
	h.sim.SetInput(chPowerGood, false)
	h.waitPower("0", true, wait, "power good again relocks")
}

// flakyDriver is a sim driver whose relay writes fail while fail is set.
type flakyDriver struct {
	*sim.Driver
	fail *atomic.Bool
}

func (f flakyDriver) OpenOutput(ch string, initial bool) (drivers.Output, error) {
	out, err := f.Driver.OpenOutput(ch, initial)
	if err != nil {
		return nil, err
	}
	return flakyOutput{out, f.fail}, nil
}

type flakyOutput struct {
	drivers.Output
	fail *atomic.Bool
}

func (o flakyOutput) Set(level bool) error {
	if o.fail.Load() {
		return errors.New("board not answering")
	}
	return o.Output.Set(level)
}

// A relay that cannot be set makes its door JAMMED and counts
// doorbridge_driver_errors_total{driver} per failed write.
func TestDriverErrorJamsAndCounts(t *testing.T) {
	br := testbroker.Start(t)
	h := &harness{t: t, broker: br, c: testbroker.Connect(t, br.URL(), "watcher"), cfg: testConfig(br.URL())}
	var fail atomic.Bool
	h.sim = sim.New(sim.Options{})
	b, err := Open(h.cfg, Options{Log: testLogger(t), Drivers: map[string]drivers.Driver{"sim": flakyDriver{h.sim, &fail}},
		TickInterval: 20 * time.Millisecond, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- b.Run(ctx) }()
	t.Cleanup(h.stop)
	h.ready()
	if got := testutil.ToFloat64(b.m.driverErrors.WithLabelValues("sim")); got != 0 {
		t.Fatalf("driver errors = %v before any failure", got)
	}

	fail.Store(true)
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateJammed, wait)
	testbroker.Eventually(t, wait, func() bool { return testutil.ToFloat64(b.m.driverErrors.WithLabelValues("sim")) >= 2 },
		"failed write and its retries counted")
	fail.Store(false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateLocked, wait)
}

// Every input of config.Door.Inputs has its own place in the loop's
// doorIO: an input added to the config's list without one fails here,
// not at a bridge's start.
func TestEveryConfigInputHasASlot(t *testing.T) {
	io := &doorIO{}
	taken := map[**inputLine]string{}
	for _, in := range (&config.Door{}).Inputs() {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("input %s: %v", in.Name, r)
				}
			}()
			p := io.slot(in.Name)
			if other, dup := taken[p]; dup {
				t.Errorf("inputs %s and %s share a place", other, in.Name)
			}
			taken[p] = in.Name
		}()
	}
}
