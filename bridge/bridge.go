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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	// TickInterval is how often timers are evaluated (default 100ms).
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

	drivers map[string]drivers.Driver
	doors   []*door
	byID    map[string]*door
	guards  map[string]*codeGuard // by code hash (codes.go)

	events chan event
	wd     *watchdog
	mq     *mqttLink
	audit  *auditLog
	state  *stateStore // bridge.state_dir (state.go)

	snapshot atomic.Pointer[Snapshot]
	stopped  chan struct{}
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
		cfg:     cfg,
		log:     opts.Log.With("component", "bridge"),
		rootLog: opts.Log,
		clock:   opts.Clock,
		reg:     opts.Registry,
		m:       newMetrics(opts.Registry),
		topics:  NewTopics(cfg),
		version: opts.Version,
		tick:    opts.TickInterval,
		notify:  opts.Notifier,
		readyBy: defaultReadyTimeout,
		drivers: map[string]drivers.Driver{},
		byID:    map[string]*door{},
		events:  make(chan event, 1024),
		stopped: make(chan struct{}),
	}
	b.audit = newAuditLog(opts.Log)
	b.state = openState(cfg.Bridge.StateDir, b.log)
	if err := b.openDrivers(opts); err != nil {
		b.closeDrivers()
		return nil, err
	}
	if err := b.openDoors(); err != nil {
		b.closeDrivers()
		return nil, err
	}
	b.openCodeGuards()
	// Only once every relay is off: with 256 doors, creating every door's
	// series takes milliseconds.
	b.m.setup(opts.Version, cfg.Doors)
	if err := b.openDoorInputs(); err != nil {
		b.closeDrivers()
		return nil, err
	}
	if err := b.openAuditFile(); err != nil {
		b.closeDrivers()
		return nil, err
	}
	b.wd = newWatchdog(b.doors, cfg.Watchdog.LoopTimeout, b.log, b.m)
	return b, nil
}

func (b *Bridge) openDrivers(opts Options) error {
	for _, dc := range b.cfg.Drivers {
		if d, ok := opts.Drivers[dc.ID]; ok {
			b.drivers[dc.ID] = d
			continue
		}
		spec, err := drivers.Decode(dc.Type, dc.Options)
		if err != nil {
			return fmt.Errorf("driver %q: %w", dc.ID, err)
		}
		d, err := spec.Open(dc.ID, b.log.With("driver", dc.ID))
		if err != nil {
			return fmt.Errorf("driver %q: %w", dc.ID, err)
		}
		b.drivers[dc.ID] = d
	}
	return nil
}

func (b *Bridge) openDoors() error {
	for i := range b.cfg.Doors {
		dc := &b.cfg.Doors[i]
		mode, err := ParseFailMode(dc.FailMode)
		if err != nil {
			return fmt.Errorf("door %q: %w", dc.ID, err)
		}
		drv := b.drivers[dc.Relay.Driver]
		if drv == nil {
			return fmt.Errorf("door %q: relay: unknown driver %q", dc.ID, dc.Relay.Driver)
		}
		// The off level of the line: lock power off, inverted on an
		// active-low board. The line's very first level is this one.
		off := dc.Relay.ActiveLow
		out, err := drv.OpenOutput(dc.Relay.Channel, off)
		if err != nil {
			return fmt.Errorf("door %q: relay %s/%s: %w", dc.ID, dc.Relay.Driver, dc.Relay.Channel, err)
		}
		d := newDoor(dc, mode, out, drv, b.topics.Door(dc.ID))
		b.doors = append(b.doors, d)
		b.byID[dc.ID] = d
	}
	for _, drv := range b.drivers {
		if f, ok := drv.(drivers.Flusher); ok {
			if err := f.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Bridge) closeDrivers() {
	for id, d := range b.drivers {
		if err := d.Close(); err != nil {
			b.log.Warn("closing driver", "driver", id, "err", err)
		}
	}
}

// Registry returns the bridge's metrics registry.
func (b *Bridge) Registry() *prometheus.Registry { return b.reg }

// Run runs the bridge until ctx is cancelled, then turns every relay off,
// publishes offline and returns. It returns an error only for a fatal
// failure, after the relays were turned off.
func (b *Bridge) Run(ctx context.Context) error {
	defer close(b.stopped)
	defer b.audit.close() // the last entry of a run, after every relay is off
	b.audit.record(auditEvent{Kind: "bridge", Outcome: "started", Detail: "doorbridge " + b.version})
	defer b.closeDrivers()
	wdCtx, stopWD := context.WithCancel(context.Background())
	defer stopWD()
	go b.wd.run(wdCtx)

	l := newLoop(b)
	defer func() {
		// A fatal error must still leave every relay off.
		if r := recover(); r != nil {
			for _, d := range b.doors {
				_ = d.off()
			}
			for _, drv := range b.drivers {
				if f, ok := drv.(drivers.Flusher); ok {
					_ = f.Flush()
				}
			}
			func() { // the audit events queued before the panic, if that works
				defer func() { _ = recover() }()
				l.flushLater()
			}()
			panic(r)
		}
	}()
	l.evaluate() // the startup hazard holds every relay off until the link is proven
	l.flushLater()
	if err := l.startLiveness(); err != nil {
		l.shutdown("fatal")
		return err
	}
	defer l.stopLiveness(false) // left armed unless the clean shutdown below disarmed it

	urls := b.cfg.MQTT.BrokerURLs()
	if len(urls) == 0 {
		eb, err := StartEmbeddedBrokerConfig(b.cfg, b.rootLog)
		if err != nil {
			l.shutdown("fatal")
			return err
		}
		defer closeWithin(eb.Close, time.Second, b.log)
		urls = []string{eb.URL()}
		b.log.Info("embedded MQTT broker listening", "addr", eb.Addr())
	}
	mq, err := newMQTTLink(b.cfg, urls, b.topics, b.events, b.log, b.m)
	if err != nil {
		l.shutdown("fatal")
		return err
	}
	b.mq = mq
	l.mq = mq
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
type Snapshot struct {
	Doors     []DoorView `json:"doors"`
	Hazards   []string   `json:"hazards"`
	Connected bool       `json:"connected"`
	Startup   bool       `json:"startup"`
	Lockdown  bool       `json:"lockdown"`
	Latched   bool       `json:"alarm_latched"`
}

// DoorView is one door in the HTTP API.
type DoorView struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	FailMode  string   `json:"fail_mode"`
	Energized bool     `json:"energized"`
	Locked    bool     `json:"locked"`
	State     string   `json:"state"`
	Cause     string   `json:"cause"`
	Hazards   []string `json:"hazards"`
}

// State returns the latest snapshot (nil before the loop ran once).
func (b *Bridge) State() *Snapshot { return b.snapshot.Load() }

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

// closeWithin calls closeFn but waits at most d: mochi's Close can deadlock
// while clients disconnect, and shutdown must not hang on it (the relays are
// already off by then).
func closeWithin(closeFn func() error, d time.Duration, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		closeFn()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		log.Warn("embedded broker did not close in time; exiting anyway")
	}
}
