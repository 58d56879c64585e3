// Package bridge is doorbridge's control loop: it owns every door's state,
// decides each lock's power with the pure package policy, writes the
// relays, and wires it all to MQTT, HTTP and the watchdog.
//
// Data flows one way. MQTT messages, connection changes and timer ticks
// become events on one channel; a single goroutine (the loop) handles them,
// asks the policy what each relay must do, writes the relays and then
// publishes the resulting state. Nothing else writes a relay, except the
// in-process watchdog, which only ever writes "off".
package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/doorbridge/doorbridge/broker"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/internal/sdnotify"
)

// Clock tells the time. Tests inject a fake one.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options are the bridge's dependencies beyond its config.
type Options struct {
	Log      *slog.Logger
	Registry *prometheus.Registry // nil: a fresh one
	Clock    Clock                // nil: the real clock
	Version  string
	// Drivers, when set, supplies opened drivers by id instead of opening
	// them from the config (tests pass sim drivers they can inspect).
	Drivers map[string]drivers.Driver
	// TickInterval is the loop's step while something times out in steps
	// (a held hazard, a momentary OPEN, a jammed relay, polled inputs, an
	// unproven link); an idle loop sleeps until its next deadline instead
	// (timers.go). Default 100ms.
	TickInterval time.Duration
	// Notifier, when set, receives systemd notifications: READY=1,
	// STOPPING=1 and, from the control loop only, WATCHDOG=1
	// (sdnotify.FromEnv in cmd/doorbridge).
	Notifier *sdnotify.Notifier
}

// Bridge is one running bridge.
type Bridge struct {
	cfg     *config.Config
	log     *slog.Logger
	rootLog *slog.Logger
	clock   Clock
	reg     *prometheus.Registry
	m       *metrics
	topics  Topics
	version string
	tick    time.Duration
	notify  *sdnotify.Notifier
	readyBy time.Duration // READY=1 at the latest this long after start (liveness.go)

	drivers map[string]*driverSlot
	doors   []*door
	byID    map[string]*door
	guards  map[string]*codeGuard // by code hash (codes.go)

	events chan event
	in     *inbound      // MQTT messages, in two ordered queues (inbound.go)
	hb     *heartbeatKey // signs the link's heartbeat probes
	// relayNews wakes the loop when a relay writer has news (relays.go).
	relayNews chan struct{}
	wd        *watchdog
	mq        *mqttLink
	embedded  atomic.Pointer[broker.Broker] // when it runs one (tests read it)
	audit     *auditLog
	state     *stateStore // bridge.state_dir (state.go)

	snapshot  atomic.Pointer[Snapshot]
	stopped   chan struct{}
	closing   chan struct{} // closed once the relays are being closed
	closeOnce sync.Once
}

// Open builds a bridge and, before anything touches the network, opens every
// relay at its off level (de-energize to trip: the safe state of every
// output is "lock power off").
func Open(cfg *config.Config, opts Options) (*Bridge, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = 100 * time.Millisecond
	}
	b := &Bridge{
		cfg:       cfg,
		log:       opts.Log.With("component", "bridge"),
		rootLog:   opts.Log,
		clock:     opts.Clock,
		reg:       opts.Registry,
		topics:    NewTopics(cfg),
		version:   opts.Version,
		tick:      opts.TickInterval,
		notify:    opts.Notifier,
		readyBy:   defaultReadyTimeout,
		drivers:   map[string]*driverSlot{},
		byID:      map[string]*door{},
		events:    make(chan event, 1024),
		relayNews: make(chan struct{}, 1),
		stopped:   make(chan struct{}),
		closing:   make(chan struct{}),
	}
	b.audit = newAuditLog(opts.Log) // a writer's panic reports to it
	// The relay writers first: each opens its own board (lazily, in its
	// writer) and writes it off, so nothing else at start (a board that
	// takes its time to open, a slow state disk, the metrics registry's
	// Go and process collectors) stands before an off write.
	if err := b.openDrivers(opts); err != nil {
		return nil, err
	}
	if err := b.openDoors(); err != nil {
		b.closeRelays()
		return nil, err
	}
	b.m = newMetrics(opts.Registry)
	b.hb = newHeartbeatKey()
	b.in = newInbound(b.topics.Heartbeat, b.hb, b.m, b.rootLog.With("component", "mqtt"))
	var err error
	if b.state, err = openState(cfg.Bridge.StateDir, b.log); err != nil {
		b.closeRelays()
		return nil, err
	}
	b.openCodeGuards()
	// Only once every relay is off: with 256 doors, creating every door's
	// series takes milliseconds.
	b.m.setup(opts.Version, cfg.Doors)
	b.openDoorInputs()
	if err := b.openAuditFile(); err != nil {
		b.closeRelays()
		b.state.unlock()
		return nil, err
	}
	b.wd = newWatchdog(b, cfg.Watchdog.LoopTimeout)
	return b, nil
}

// openDrivers decodes every driver's options; it opens none. Each door's
// relay writer opens its board on its first write (outputOpener), each on
// its own goroutine: a board that does not answer, or takes the length of
// its dial timeout to, holds up its own doors only, never another board's
// off writes (R2, R22). One that cannot be opened is retried by its doors'
// writers until it works: its doors start JAMMED, every other door runs
// (start best effort). Only a config that cannot work is an error.
func (b *Bridge) openDrivers(opts Options) error {
	for _, dc := range b.cfg.Drivers {
		if d, ok := opts.Drivers[dc.ID]; ok {
			b.drivers[dc.ID] = &driverSlot{Slot: drivers.OpenedSlot(dc.ID, d, b.log)}
			continue
		}
		s, err := drivers.NewSlot(dc, b.log)
		if err != nil {
			return err
		}
		b.drivers[dc.ID] = &driverSlot{Slot: s}
	}
	return nil
}

// openDoors starts every door's relay writer, whose first write opens the
// output at its off level (de-energize to trip), and waits until each is
// written or has failed, at most writeDeadline: a board that hangs does not
// hold up the start, nor the off writes of the others.
func (b *Bridge) openDoors() error {
	for i := range b.cfg.Doors {
		dc := &b.cfg.Doors[i]
		mode, err := ParseFailMode(dc.FailMode)
		if err != nil {
			return fmt.Errorf("door %q: %w", dc.ID, err)
		}
		slot := b.drivers[dc.Relay.Driver]
		if slot == nil {
			return fmt.Errorf("door %q: relay: unknown driver %q", dc.ID, dc.Relay.Driver)
		}
		d := newDoor(dc, mode, b.topics.Door(dc.ID))
		d.relay = newRelay(dc.ID, dc.Relay, b.outputOpener(slot, dc), b.relayNews)
		b.doors = append(b.doors, d)
		b.byID[dc.ID] = d
	}
	for _, d := range b.doors {
		go b.guard("relay "+d.cfg.ID, d.relay.run)
	}
	// A write that hangs is overdue after writeDeadline, and counts as
	// done (failed) then; the timer is only a backstop.
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for !b.allOpened() {
		select { // the loop, not started yet, takes each relay's news later
		case <-b.relayNews:
		case <-t.C:
			return nil
		}
	}
	return nil
}

// allOpened reports whether every relay's first write (off) is done or failed.
func (b *Bridge) allOpened() bool {
	for _, d := range b.doors {
		if done, err := d.relay.offSince(1); !done && err == nil {
			return false
		}
	}
	return true
}

// Close releases a bridge that was opened but never run (Run releases it
// itself): it stops the relay writers and closes the drivers.
func (b *Bridge) Close() {
	b.closeRelays()
	b.state.unlock()
}

// closeRelays stops the relay writers and closes the drivers (every relay
// is off by then), waiting at most a second in all for writers still in a
// write and for the drivers' Close: a hung board's Close may wait for the
// bus lock its hung write holds (the MCP23017), and shutdown must not.
func (b *Bridge) closeRelays() {
	b.closeOnce.Do(func() { close(b.closing) })
	for _, d := range b.doors {
		d.relay.stop()
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		b.closeDrivers()
	}()
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for _, d := range b.doors {
		select {
		case <-d.relay.done:
		case <-deadline.C:
			b.log.Warn("a relay writer is still in a write at exit", "door", d.cfg.ID)
			return
		}
	}
	select {
	case <-closed:
	case <-deadline.C:
		b.log.Warn("a driver is still closing at exit")
	}
}

// guard runs fn, one of the bridge's goroutines: a panic in it forces every
// relay off, as a panic of the loop does, then crashes the process.
func (b *Bridge) guard(name string, fn func()) {
	defer b.recoverFatal(name)
	fn()
}

// recoverFatal is guard's deferred half, for goroutines that defer it
// themselves (paho callbacks, the embedded broker's hooks).
func (b *Bridge) recoverFatal(name string) {
	r := recover()
	if r == nil {
		return
	}
	seqs := b.forceAll() // before the log line: a stalled stderr blocks it
	b.log.Error("panic: forcing every relay off", "goroutine", name, "panic", r)
	b.reportForced(seqs, "panic")
	fatalPanic(r)
}

// fatalPanic ends the process after a panic outside the loop once the relays
// are off. Tests replace it to watch the relays instead of crashing.
var fatalPanic = func(r any) { panic(r) }

// outputOpener opens door dc's output at its off level: lock power off,
// inverted on an active-low board. The line's very first level is this one.
func (b *Bridge) outputOpener(slot *driverSlot, dc *config.Door) func() (drivers.Output, error) {
	return func() (drivers.Output, error) {
		drv, err := slot.Get()
		if err != nil {
			return nil, err
		}
		out, err := drivers.OpenRelay(drv, dc.Relay)
		if err != nil {
			return nil, err
		}
		if g := slot.flusher(); g != nil {
			if err := g.flush(); err != nil {
				return nil, fmt.Errorf("relay %s/%s: %w", dc.Relay.Driver, dc.Relay.Channel, err)
			}
			return flushedOutput{Output: out, g: g}, nil
		}
		return out, nil
	}
}

// driverSlot is one configured driver (drivers.Slot, shared with
// test-door) and the flush group of its relay writers.
type driverSlot struct {
	*drivers.Slot
	mu sync.Mutex
	fg *flushGroup // when the driver batches writes
}

// flusher returns the flush group of an opened driver that batches writes.
func (s *driverSlot) flusher() *flushGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.Opened().(drivers.Flusher); ok && s.fg == nil {
		s.fg = newFlushGroup(f)
	}
	return s.fg
}

// closeDrivers closes every opened driver, and stops the others from
// being opened. A hung write on a sim driver ends with its Close.
func (b *Bridge) closeDrivers() {
	for id, s := range b.drivers {
		if err := s.Close(); err != nil {
			b.log.Warn("closing driver", "driver", id, "err", err)
		}
	}
}

// Run runs the bridge until ctx is cancelled, then turns every relay off,
// publishes offline and returns. It returns an error only for a fatal
// failure, after the relays were turned off.
func (b *Bridge) Run(ctx context.Context) error {
	defer close(b.stopped)
	defer b.state.unlock() // the very last: every record is written by then
	defer b.audit.close()  // the last entry of a run, after every relay is off
	b.audit.record(auditEvent{Kind: "bridge", Outcome: "started", Detail: "doorbridge " + b.version}, false)
	defer b.closeRelays()
	wdCtx, stopWD := context.WithCancel(context.Background())
	defer func() {
		stopWD()
		<-b.wd.done // a trip in progress ends within a write deadline
	}()
	go b.guard("watchdog", func() { b.wd.run(wdCtx) })

	l := newLoop(b)
	defer func() {
		// A fatal error must still leave every relay off.
		if r := recover(); r != nil {
			seqs := b.forceAll() // before the log line: a stalled stderr blocks it
			b.log.Error("control loop panicked: forcing every relay off", "panic", r)
			b.reportForced(seqs, "panic")
			func() { // the audit events queued before the panic, if that works
				defer func() { _ = recover() }()
				l.flushLater()
			}()
			panic(r)
		}
	}()
	l.evaluate("startup") // the startup hazard holds every relay off until the link is proven
	l.flushLater()
	if err := l.startLiveness(); err != nil {
		l.shutdown("fatal")
		return err
	}
	defer l.stopLiveness(false) // left armed unless the clean shutdown below disarmed it

	urls := b.cfg.MQTT.BrokerURLs()
	if len(urls) == 0 {
		eb, err := broker.Start(b.cfg, b.rootLog)
		if err != nil {
			l.shutdown("fatal")
			return err
		}
		defer eb.Stop()
		b.embedded.Store(eb)
		eb.SetBridge(b.in.isSafety, l.safetyFilters(), b.m)
		// In process: sockets flooding the public listeners, or filling
		// their pending logins, never stand in the way of the bridge's.
		urls = []string{eb.BridgeURL()}
		b.log.Info("embedded MQTT broker listening", "addr", eb.Addr())
	}
	mq, err := newMQTTLink(b.cfg, urls, b.topics, b.events, b.in, b.rootLog, b.m)
	if err != nil {
		l.shutdown("fatal")
		return err
	}
	b.mq = mq
	l.mq = mq
	b.in.overflow = mq.dropGen
	mq.recoverFatal = b.recoverFatal
	b.audit.sink = eventPublisher(mq, b.topics.Events)
	mq.start()
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	if err := b.startPowerSources(srcCtx); err != nil {
		l.shutdown("fatal")
		mq.stop(2 * time.Second)
		return err
	}

	err = l.run(ctx)
	l.notifyStopping()
	l.shutdown("shutdown")
	l.stopLiveness(true) // every relay is off: disarm the hardware watchdog
	mq.stop(2 * time.Second)
	return err
}

// Snapshot is the state of every door, for the HTTP API.
//
// A snapshot and its door views are never changed once stored: the next
// snapshot shares the views of the doors that did not change (a change to
// one door of 256 copies 256 pointers, not 256 views).
type Snapshot struct {
	Doors     []*DoorView `json:"doors"`
	Hazards   []string    `json:"hazards"`
	Connected bool        `json:"connected"`
	Startup   bool        `json:"startup"`
	Lockdown  bool        `json:"lockdown"`
	Latched   bool        `json:"alarm_latched"`
}

// DoorView is one door in the HTTP API.
type DoorView struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	FailMode  string   `json:"fail_mode"`
	Energized *bool    `json:"energized"` // null: unknown, the relay is faulted
	Locked    *bool    `json:"locked"`
	State     string   `json:"state"`
	Cause     string   `json:"cause"`
	Hazards   []string `json:"hazards"`
	// AlarmLatched: the fire release latch is set (every fail-safe door
	// stays released until a reset).
	AlarmLatched bool `json:"alarm_latched"`
	// RelockAt is when the unlocked door locks again by itself (the end of
	// a momentary OPEN, or of relock_delay after the last hazard cleared);
	// RelockInS the seconds left then, filled in when the API is read.
	RelockAt  *time.Time `json:"relock_at,omitempty"`
	RelockInS *float64   `json:"relock_in_s,omitempty"`
}

// withTimeLeft is doors with RelockInS counted from now.
func withTimeLeft(doors []*DoorView, now time.Time) []DoorView {
	out := make([]DoorView, len(doors))
	for i, v := range doors {
		out[i] = *v
		if at := out[i].RelockAt; at != nil {
			left := math.Round(max(0, at.Sub(now).Seconds())*10) / 10
			out[i].RelockInS = &left
		}
	}
	return out
}

// State returns the latest snapshot (nil before the loop ran once). It is
// shared: the snapshot, its door views and everything they point to are
// read-only (the next snapshot shares the views of unchanged doors), so a
// caller that wants to change one copies it first, as DoorViews does.
func (b *Bridge) State() *Snapshot { return b.snapshot.Load() }

// DoorViews returns the doors of the latest snapshot with the seconds left
// until each relocks counted from now (empty, not nil, before the loop
// ran once): /api/v1/doors.
func (b *Bridge) DoorViews() []DoorView {
	s := b.State()
	if s == nil {
		return []DoorView{}
	}
	return withTimeLeft(s.Doors, b.clock.Now())
}

// Registry holds the bridge's metrics, for /metrics.
func (b *Bridge) Registry() *prometheus.Registry { return b.reg }

// Healthy reports whether the control loop checked in recently.
func (b *Bridge) Healthy() bool { return b.wd.healthy() }

// Ready reports whether the bridge is connected and past start-up.
func (b *Bridge) Ready() bool {
	s := b.snapshot.Load()
	return s != nil && s.Connected && !s.Startup && b.Healthy()
}

// ReportPower hands a power source's reading to the loop: lost raises the
// power hazard. Power sources call it from their own goroutines.
func (b *Bridge) ReportPower(source string, lost bool, detail string) {
	select {
	case b.events <- evPower{source: source, lost: lost, detail: detail}:
	case <-b.stopped:
	}
}
