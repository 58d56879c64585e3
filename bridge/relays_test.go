package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/drivers/modbus"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Fault isolation (R22), end to end on the real broker, with faults put on
// the sim relays through faults_file.

// maglocksFirst lists fail-safe doors on the given sim channels before
// the harness's own doors (fs on channel 0, fsec on channel 1).
func maglocksFirst(ids ...string) func(*config.Config) {
	return func(cfg *config.Config) {
		var doors []config.Door
		for i, id := range ids {
			doors = append(doors, config.Door{ID: id, Name: id, FailMode: config.FailSafe, Egress: true, UnlockTime: time.Second,
				Relay: config.Line{Driver: "sim", Channel: faultChannels[i]}})
		}
		cfg.Doors = append(doors, cfg.Doors...)
	}
}

var faultChannels = []string{"2", "3", "4"}

// faultHarness runs a harness whose sim driver reads faults from a file;
// the doors of extra (listed first) are on channels 2, 3, 4.
func faultHarness(t *testing.T, extra ...string) (*harness, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "faults.json")
	h := newHarnessWith(t, maglocksFirst(extra...), func(h *harness) { h.simOpts.FaultsFile = path })
	// Before the bridge stops (cleanups run last first): a hung write must
	// not outlive the test.
	t.Cleanup(func() { writeFaults(t, h, path, `{}`, func() bool { return true }) })
	return h, path
}

// writeFaults writes the faults file and waits until the driver took it.
func writeFaults(t *testing.T, h *harness, path, content string, taken func() bool) {
	t.Helper()
	if err := sim.WriteFileAtomic(path, []byte(content)); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, wait, taken, "faults file %s taken", content)
}

// A board that hangs (listed first) does not delay the release of a healthy
// maglock: it is released while the hung write still hangs, and only the
// hung door is JAMMED, with its power unknown.
func TestHungBoardDoesNotDelayRelease(t *testing.T) {
	h, faults := faultHarness(t, "hung")
	h.ready()
	h.waitPower("2", true, wait, "the door on the board about to hang locks")
	writeFaults(t, h, faults, `{"2": {"hang": true}}`, func() bool { return h.sim.Fault("2").Hang })

	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "the healthy maglock is released while another door's write hangs")
	if !h.power("2") {
		t.Fatalf("the hung write went through: the test proves nothing")
	}
	h.c.WaitPayload(h.topic("hung", "state"), StateJammed, wait)
	h.c.WaitPayload(h.topic("hung", "energized"), payloadUnknown, wait)

	writeFaults(t, h, faults, `{}`, func() bool { return !h.sim.Fault("2").Hang })
	h.waitPower("2", false, wait, "the hung write goes through once the board answers")
	h.c.WaitPayload(h.topic("hung", "state"), StateUnlocked, wait)
}

// The watchdog forces every relay off while the loop is stuck, even past a
// board whose writes hang: no door waits on another door's board.
func TestWatchdogReleasesPastAHungBoard(t *testing.T) {
	h, faults := faultHarness(t, "hung")
	h.ready()
	writeFaults(t, h, faults, `{"2": {"hang": true}}`, func() bool { return h.sim.Fault("2").Hang })
	release := make(chan struct{})
	var released atomic.Bool
	t.Cleanup(func() {
		if !released.Swap(true) {
			close(release)
		}
	})
	h.b.events <- evFunc(func(*loop) { <-release })

	h.waitPower("0", false, wait, "the watchdog releases the maglock listed after the hung board")
	if !h.power("2") {
		t.Fatalf("the hung write went through: the test proves nothing")
	}
	released.Store(true)
	close(release)
	writeFaults(t, h, faults, `{}`, func() bool { return !h.sim.Fault("2").Hang })
	h.waitPower("0", true, wait, "relocks once the loop is healthy again")
}

// Three doors on a slow board (1 s a write) listed before a healthy maglock
// do not delay its release: it is released before the slow writes are done.
func TestSlowBoardDoesNotDelayRelease(t *testing.T) {
	h, faults := faultHarness(t, "slow1", "slow2", "slow3")
	h.ready()
	for _, ch := range faultChannels {
		h.waitPower(ch, true, wait, "the doors on the board about to slow down lock")
	}
	writeFaults(t, h, faults, `{"2": {"delay": "1s"}, "3": {"delay": "1s"}, "4": {"delay": "1s"}}`,
		func() bool { return h.sim.Fault("4").Delay == time.Second })

	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "the healthy maglock is released")
	if !h.power("4") {
		t.Fatalf("the third slow door was written before the healthy maglock was released")
	}
	for _, ch := range faultChannels {
		h.waitPower(ch, false, wait, "the slow doors are released too")
	}
}

// A board that cannot be opened at start does not stop the bridge: every
// other door runs, the board's door starts JAMMED, and it recovers once the
// board can be opened.
func TestStartWithABoardDown(t *testing.T) {
	// A faults file that cannot be read makes the sim driver fail to open.
	unreadable := filepath.Join(t.TempDir(), "faults.json")
	if err := os.Mkdir(unreadable, 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(cfg *config.Config) {
		cfg.Drivers = append(cfg.Drivers, config.Driver{ID: "down", Type: "sim", Options: map[string]any{"faults_file": unreadable}})
		cfg.Doors = append(cfg.Doors, config.Door{ID: "back", Name: "Back", FailMode: config.FailSafe, Egress: true,
			UnlockTime: time.Second, Relay: config.Line{Driver: "down", Channel: "0"}})
	})
	h.ready()
	h.c.WaitPayload(h.topic("back", "state"), StateJammed, wait)
	h.c.WaitPayload(h.topic("back", "energized"), payloadUnknown, wait)

	if err := os.Remove(unreadable); err != nil {
		t.Fatal(err)
	}
	h.c.WaitPayload(h.topic("back", "state"), StateLocked, wait)
	h.c.WaitPayload(h.topic("back", "energized"), "ON", wait)
}

// A failed write is published as unknown, not as "off": the relay may
// still be powered (here it is).
func TestFailedWritePublishesUnknown(t *testing.T) {
	h, faults := faultHarness(t)
	h.ready()
	writeFaults(t, h, faults, `{"0": {"error": "i2c: no ack"}}`, func() bool { return h.sim.Fault("0").Error != "" })

	h.c.Publish(h.alarmTopic(), "ON", true)
	h.c.WaitPayload(h.topic("fs", "state"), StateJammed, wait)
	h.c.WaitPayload(h.topic("fs", "energized"), payloadUnknown, wait)
	if !h.power("0") {
		t.Fatalf("the relay was written despite the fault")
	}
	if v := apiDoor(t, h, "fs"); v["energized"] != nil || v["locked"] != nil {
		t.Fatalf("API: energized %v, locked %v while the relay is faulted; want null (unknown)", v["energized"], v["locked"])
	}

	writeFaults(t, h, faults, `{}`, func() bool { return h.sim.Fault("0").Error == "" })
	h.waitPower("0", false, wait, "the retried write goes through")
	h.c.WaitPayload(h.topic("fs", "energized"), "OFF", wait)
}

// apiDoor returns door id from GET /api/v1/doors.
func apiDoor(t *testing.T, h *harness, id string) map[string]any {
	t.Helper()
	body := apiDoorsJSON(t, h.b)
	var doors []map[string]any
	if err := json.Unmarshal(body, &doors); err != nil {
		t.Fatalf("/api/v1/doors: %v: %s", err, body)
	}
	for _, d := range doors {
		if d["id"] == id {
			return d
		}
	}
	t.Fatalf("/api/v1/doors has no door %q: %s", id, body)
	return nil
}

// panicDriver is a sim driver whose input reads panic once armed.
type panicDriver struct {
	*sim.Driver
	armed *atomic.Bool
}

func (p panicDriver) OpenInput(ch string, o drivers.InputOptions) (drivers.Input, error) {
	in, err := p.Driver.OpenInput(ch, o)
	return panicInput{in, p.armed}, err
}

type panicInput struct {
	drivers.Input
	armed *atomic.Bool
}

func (i panicInput) Read() (bool, error) {
	if i.armed.Load() {
		panic("driver bug")
	}
	return i.Input.Read()
}

// A panic in a goroutine other than the loop (here a power watcher's poll)
// forces every relay off before the process ends.
func TestPanicOutsideTheLoopForcesRelaysOff(t *testing.T) {
	panicked := make(chan any, 1)
	prev := fatalPanic
	fatalPanic = func(r any) { // instead of crashing the test
		select {
		case panicked <- r:
		default:
		}
	}
	t.Cleanup(func() { fatalPanic = prev }) // after the bridge stopped

	var armed atomic.Bool
	mains := sim.New(sim.Options{})
	mains.SetInput("good", true)
	h := newHarnessWith(t, func(cfg *config.Config) {
		cfg.Drivers = append(cfg.Drivers, config.Driver{ID: "mains", Type: "sim"})
		cfg.Power = []config.PowerSource{{Type: config.PowerInput, Name: "mains", Driver: "mains", Channel: "good",
			PollInterval: 50 * time.Millisecond, Timeout: time.Second}}
	}, func(h *harness) { h.more = map[string]drivers.Driver{"mains": panicDriver{mains, &armed}} })
	h.ready()

	armed.Store(true)
	select {
	case r := <-panicked:
		armed.Store(false)
		if r != "driver bug" {
			t.Fatalf("panic %v", r)
		}
	case <-time.After(wait):
		t.Fatalf("no panic reported")
	}
	h.waitPower("0", false, wait, "every relay is off after a panic outside the loop")
}

// The watchdog's own off writes reach the audit file while the loop is
// still stuck, not only once it comes back.
func TestWatchdogWritesReachTheAuditWhileTheLoopIsStuck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	h := newHarness(t, func(cfg *config.Config) { cfg.Audit.File = path })
	h.ready()
	release := make(chan struct{})
	var released atomic.Bool
	t.Cleanup(func() {
		if !released.Swap(true) {
			close(release)
		}
	})
	h.b.events <- evFunc(func(*loop) { <-release })
	h.waitPower("0", false, wait, "the watchdog releases the maglock")
	testbroker.Eventually(t, wait, func() bool {
		found := false
		_, _ = audit.ReadAll(path, func(_ string, e audit.Event) {
			found = found || (e.Kind == "relay" && e.Door == "fs" && e.Origin == "watchdog" && e.Energized != nil && !*e.Energized)
		})
		return found
	}, "the watchdog's off write of fs in the audit file while the loop is stuck")
}

// stuckDriver is a sim driver whose input reads block while stuck is set,
// like an I2C expander on a bus held low; its inputs are not drivers.Cached.
type stuckDriver struct {
	*sim.Driver
	stuck   *atomic.Bool
	release chan struct{}
}

func (d stuckDriver) OpenInput(ch string, o drivers.InputOptions) (drivers.Input, error) {
	in, err := d.Driver.OpenInput(ch, o)
	return stuckInput{in: in, d: d}, err
}

type stuckInput struct {
	in drivers.Input
	d  stuckDriver
}

func (i stuckInput) Read() (bool, error) {
	if i.d.stuck.Load() {
		<-i.d.release
	}
	return i.in.Read()
}

// A door input on a board that hangs (listed first) does not stall the
// loop: the healthy maglock is released by the loop, not by the watchdog.
func TestHungInputDoesNotStallTheLoop(t *testing.T) {
	var stuck atomic.Bool
	bus := stuckDriver{Driver: sim.New(sim.Options{}), stuck: &stuck, release: make(chan struct{})}
	bus.SetInput("c", false)
	h := newHarnessWith(t, func(cfg *config.Config) {
		maglocksFirst("hall")(cfg)
		cfg.Drivers = append(cfg.Drivers, config.Driver{ID: "bus", Type: "sim"})
		cfg.Doors[0].Contact = &config.Line{Driver: "bus", Channel: "c"}
	}, func(h *harness) { h.more = map[string]drivers.Driver{"bus": bus} })
	h.ready()
	var released atomic.Bool
	unstick := func() {
		if !released.Swap(true) {
			stuck.Store(false)
			close(bus.release)
		}
	}
	t.Cleanup(unstick)

	stuck.Store(true)
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "the healthy maglock is released while another door's input read hangs")
	if n := testutil.ToFloat64(h.b.m.hazardsRaised.WithLabelValues(HazardWatchdog.String())); n != 0 {
		t.Fatalf("released by the watchdog (%v trips): the loop was stuck on the hung input", n)
	}
	h.c.WaitPayload(h.topic("hall", "contact"), payloadUnknown, wait)
	unstick()
	h.c.WaitPayload(h.topic("hall", "contact"), "OFF", wait)
}

// hangOpenSpec is a driver whose Open hangs until release is closed: a
// Modbus TCP board that drops SYNs (modbus.New dials for up to its timeout,
// 30 s accepted), an MCP23017 on an I2C bus held low.
type hangOpenSpec struct{ release chan struct{} }

// hangOpenRelease is the release of the next "hangopen" driver decoded.
var hangOpenRelease atomic.Pointer[chan struct{}]

func init() {
	drivers.Register("hangopen", func(map[string]any) (drivers.Spec, error) {
		return hangOpenSpec{release: *hangOpenRelease.Load()}, nil
	})
}

func (s hangOpenSpec) Open(string, *slog.Logger) (drivers.Driver, error) {
	<-s.release
	return nil, errors.New("board unreachable")
}

// Regression test for the safety review's S2 (openDrivers, called by
// Open before openDoors, used to open every driver): start-up opened
// every driver one after the other, on the caller's goroutine, before any
// relay writer existed. A board whose Open
// takes long (modbus.New dials for up to its timeout, 30 s accepted; a
// stuck I2C bus) delays the off write of every door of every other board
// (R2, R22): a GPIO maglock a Pi kept powered through a crash stays
// powered during a fire for as long as the other board takes to answer.
func TestStartupOffWritesDoNotWaitOnAnotherBoardsOpen(t *testing.T) {
	release := make(chan struct{})
	hangOpenRelease.Store(&release)
	t.Cleanup(func() { close(release) })
	cfg := testConfig("tcp://127.0.0.1:1")
	cfg.Drivers = append([]config.Driver{{ID: "slow", Type: "hangopen"}}, cfg.Drivers...)
	cfg.Doors = append(cfg.Doors, config.Door{ID: "far", Name: "far", FailMode: config.FailSafe, Egress: true,
		UnlockTime: time.Second, Relay: config.Line{Driver: "slow", Channel: "0"}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	simDrv := sim.New(sim.Options{})
	go func() {
		b, err := Open(cfg, Options{Log: slog.New(slog.DiscardHandler), Drivers: map[string]drivers.Driver{"sim": simDrv}, Version: "test"})
		if err == nil {
			b.Close()
		}
	}()
	// The other board's Open never returns while the test runs: any
	// deadline tells waiting on it from not waiting.
	testbroker.Eventually(t, wait, func() bool { _, written := simDrv.Levels()["0"]; return written },
		"the maglock on the healthy board is written off while another board's Open hangs")
}

// busDriver is a sim driver whose writes and Close share one bus lock, as
// the MCP23017 driver's do (drivers/mcp23017/driver.go:136 takes d.mu): a
// write that hangs on the bus holds it.
type busDriver struct {
	*sim.Driver
	mu      *sync.Mutex
	hang    *atomic.Bool
	release chan struct{}
}

func (d busDriver) OpenOutput(ch string, initial bool) (drivers.Output, error) {
	o, err := d.Driver.OpenOutput(ch, initial)
	return busOutput{Output: o, d: d}, err
}

func (d busDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Driver.Close()
}

type busOutput struct {
	drivers.Output
	d busDriver
}

func (o busOutput) Set(level bool) error {
	o.d.mu.Lock()
	defer o.d.mu.Unlock()
	if o.d.hang.Load() {
		<-o.d.release
	}
	return o.Output.Set(level)
}

// Regression test for the safety review's m1: shutdown waited on a hung
// board: closeRelays bounded its wait for the writers to a
// second, but called closeDrivers first, without any bound; a driver whose
// Close needs the lock a hung write holds (the MCP23017) keeps Run from
// ever returning after SIGTERM (R10: exit; systemd then SIGKILLs after
// TimeoutStopSec, 90 s by default, and restarts late).
func TestShutdownDoesNotWaitOnAHungBoard(t *testing.T) {
	var hang atomic.Bool
	bus := busDriver{Driver: sim.New(sim.Options{}), mu: &sync.Mutex{}, hang: &hang, release: make(chan struct{})}
	t.Cleanup(func() { hang.Store(false); close(bus.release) })
	br := testbroker.Start(t)
	c := testbroker.Connect(t, br.URL(), "watcher")
	cfg := testConfig(br.URL())
	cfg.Drivers = append(cfg.Drivers, config.Driver{ID: "bus", Type: "sim"})
	cfg.Doors = append(cfg.Doors, config.Door{ID: "onbus", Name: "onbus", FailMode: config.FailSafe, Egress: true,
		UnlockTime: time.Second, Relay: config.Line{Driver: "bus", Channel: "0"}})
	simDrv := sim.New(sim.Options{})
	b, err := Open(cfg, Options{Log: testLogger(t), Drivers: map[string]drivers.Driver{"sim": simDrv, "bus": bus},
		TickInterval: 20 * time.Millisecond, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	c.Publish("db/alarm", "OFF", true)
	testbroker.Eventually(t, wait, func() bool { return bus.Driver.Levels()["0"] }, "the door on the bus locks")

	hang.Store(true)
	c.Publish("db/alarm", "ON", true) // its release write hangs on the bus
	testbroker.Eventually(t, wait, func() bool { return !simDrv.Levels()["0"] }, "the healthy maglock is released")

	cancel() // SIGTERM
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("Run did not return within %s of SIGTERM: closeDrivers waits on the hung board's Close", wait)
	}
}

// A driver's own timeout must end a write before the relay's write
// deadline: a slow board's write then fails, its door stays JAMMED and
// released, instead of completing after the deadline and cycling the
// door between powered and released.
func TestDriverTimeoutsInsideWriteDeadline(t *testing.T) {
	if modbus.MaxTimeout >= writeDeadline {
		t.Fatalf("modbus.MaxTimeout %v is not below the relay write deadline %v", modbus.MaxTimeout, writeDeadline)
	}
}
