package bridge

// The deterministic simulation of the loop: a fake clock, publishers whose
// messages a broker interleaves (each publisher's order kept, as MQTT
// keeps it), a client that hands them to the loop, relay outputs that fail,
// and an independent model of what the broker's order implies, all from one
// seed. Every schedule is checked against the safety rules after every step
// and against the model's final state after quiet (R1, R3, R4, R17, R21).
//
//	go test -run TestSimulation ./bridge                                # 1000 schedules (100 with -race)
//	DOORBRIDGE_SIM_SCHEDULES=100000 go test -run TestSimulation ./bridge
//	DOORBRIDGE_SIM_SEED=1234 go test -run TestSimulation -v ./bridge    # replay one

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/policy"
)

const (
	simDefaultSchedules = 1000
	simTick             = 20 * time.Millisecond
	simRelockDelay      = 300 * time.Millisecond
	simUnlockTime       = time.Second
	simPowerTopic       = "ups/state"
)

// simReplaying: a replayed seed traces every tick and prints the whole trace.
var simReplaying = os.Getenv("DOORBRIDGE_SIM_SEED") != ""

// simForever is later than any schedule's clock.
var simForever = time.Unix(1<<40, 0)

func TestSimulation(t *testing.T) {
	n := simDefaultSchedules / simRaceScale
	if v := os.Getenv("DOORBRIDGE_SIM_SCHEDULES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("DOORBRIDGE_SIM_SCHEDULES=%q: want a positive number", v)
		}
	}
	if testing.Short() {
		n = min(n, 200)
	}
	if v := os.Getenv("DOORBRIDGE_SIM_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("DOORBRIDGE_SIM_SEED=%q: %v", v, err)
		}
		if err := runSimulation(t, seed, simFlags{}); err != nil {
			t.Fatalf("%v\n%s", err, simReplay(seed))
		}
		return
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("%d schedules from seed %d", n, base)
	for i := range n {
		seed := base + uint64(i)
		if err := runSimulation(t, seed, simFlags{}); err != nil {
			t.Fatalf("schedule %d: %v\n%s", i, err, simReplay(seed))
		}
	}
}

// The simulation catches the class of bug of issue 11 item 1: with a
// client that hands messages over in any order (paho with
// SetOrderMatters(false)), schedules fail.
func TestSimulationCatchesReordering(t *testing.T) {
	base := uint64(time.Now().UnixNano())
	for i := range 2000 {
		if err := runSimulation(t, base+uint64(i), simFlags{reorder: true}); err != nil {
			t.Logf("caught after %d schedules: %v", i+1, err)
			return
		}
	}
	t.Fatal("2000 schedules with messages handed over out of order: no violation found")
}

func simReplay(seed uint64) string {
	return fmt.Sprintf("replay: DOORBRIDGE_SIM_SEED=%d go test -count=1 -run 'TestSimulation$' -v ./bridge", seed)
}

// simItem6Fixed: a relay whose write failed is published with unknown lock
// power (issue 11 item 6, branch relayio); until then JAMMED doors are
// published "energized OFF" whatever the line does.
const simItem6Fixed = true

// simFlags reintroduce known defects, to show the simulation catches them.
type simFlags struct {
	reorder bool // the client hands messages to the loop in any order
}

// ---- relay outputs ----

// simFault is what goes wrong with a relay output's writes.
type simFault uint8

const (
	faultNone  simFault = iota
	faultError          // writes fail at once; the line keeps its level
	faultSlow           // writes take delay (of the fake clock), then happen
	faultHang           // writes block until the fault is removed, then happen
)

func (f simFault) String() string {
	return [...]string{"none", "error", "slow", "hang"}[f]
}

// simOutputs is a driver whose outputs the simulation breaks at will.
type simOutputs struct {
	outs map[string]*simOut
}

// simOut is one relay output. The bridge's relay writer goroutine writes
// it; the simulation decides, on its fake clock, when a slow or hung write
// ends.
type simOut struct {
	mu      sync.Mutex
	level   bool // the line's real level
	opened  bool
	fault   simFault
	delay   time.Duration // of faultSlow
	writes  int
	blocked *simWrite // a write waiting for the simulation; nil: none
}

// simWrite is a write held by a slow or hung output.
type simWrite struct {
	level   bool
	gate    chan struct{} // closed by the simulation: the write happens
	started time.Time     // fake time, set by the simulation when it sees it
	overdue bool          // the simulation told the writer its deadline passed
}

// mayLag reports whether the line may hold a level the bridge could not
// change: its writes fail or are held.
func (o *simOut) mayLag() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fault != faultNone || o.blocked != nil
}

func (d *simOutputs) OpenOutput(ch string, initial bool) (drivers.Output, error) {
	o := d.outs[ch]
	if o == nil {
		return nil, fmt.Errorf("sim: channel %q unknown", ch)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.opened {
		return nil, fmt.Errorf("sim: channel %q busy", ch)
	}
	o.opened, o.level = true, initial
	return o, nil
}

func (d *simOutputs) Close() error { return nil }

func (o *simOut) Set(level bool) error {
	o.mu.Lock()
	o.writes++
	switch o.fault {
	case faultError:
		o.mu.Unlock()
		return errors.New("sim: i2c: no ack")
	case faultSlow, faultHang:
		w := &simWrite{level: level, gate: make(chan struct{})}
		o.blocked = w
		o.mu.Unlock()
		<-w.gate
		o.mu.Lock()
	}
	o.level = level
	o.mu.Unlock()
	return nil
}

func (o *simOut) Level() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.level
}

// release lets a held write happen.
func (o *simOut) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.blocked != nil {
		close(o.blocked.gate)
		o.blocked = nil
	}
}

// ---- publishers, broker and client ----

type simMsg struct {
	from           string
	topic, payload string
	retained       bool
}

func (m simMsg) String() string {
	return fmt.Sprintf("%s: %s %q", m.from, m.topic, m.payload)
}

// ---- the model: what the broker's order implies ----

// simModel processes messages in the broker's order, independently of the
// bridge, and knows when its prediction is certain.
type simModel struct {
	cfg        *config.Config
	alarm      string // last alarm payload
	latched    bool
	power      string // last power payload
	lastHazard time.Time
	// Every door's possible commands, and the possible lockdown values:
	// one value when the model is sure, more when a command met a moment
	// when a hazard might have been held (relock_delay) or a relay faulted.
	cmds       []map[Command]bool
	lockdown   map[bool]bool
	faultUntil []time.Time // a door may carry the driver hazard until then
}

func newSimModel(cfg *config.Config, now time.Time) *simModel {
	m := &simModel{cfg: cfg, alarm: "OFF", power: "OL", lastHazard: now, lockdown: map[bool]bool{false: true}}
	for range cfg.Doors {
		m.cmds = append(m.cmds, map[Command]bool{CommandLock: true})
		m.faultUntil = append(m.faultUntil, time.Time{})
	}
	return m
}

func (m *simModel) alarmActive() bool { return m.alarm != "OFF" }
func (m *simModel) powerLost() bool   { return m.power != "OL" }
func (m *simModel) globalHazard() bool {
	return m.alarmActive() || m.latched || m.powerLost()
}

// doorHazard says whether door i surely has a hazard (sure) and whether it
// may have one (maybe) at now.
func (m *simModel) doorHazard(i int, now time.Time) (sure, maybe bool) {
	dc := m.cfg.Doors[i]
	batteryHold := !dc.ReleasesOnPowerLoss() && dc.FailMode == config.FailSafe
	switch {
	case m.alarmActive() || m.latched:
		return true, true
	case m.powerLost() && !batteryHold:
		return true, true
	case m.powerLost():
		// held on battery (R8): no hazard for 10 minutes; the hold and its
		// end are not modelled.
		return false, true
	}
	// A cleared hazard holds for relock_delay, judged at a tick.
	held := now.Before(m.lastHazard.Add(simRelockDelay + 3*simTick))
	faulted := now.Before(m.faultUntil[i])
	return false, held || faulted
}

func (m *simModel) setHazardEdge(was bool, now time.Time) {
	if was || m.globalHazard() {
		m.lastHazard = now
	}
}

// deliver takes one message, in the broker's order.
func (m *simModel) deliver(msg simMsg, topics Topics, now time.Time) {
	was := m.globalHazard()
	defer m.setHazardEdge(was, now)
	switch {
	case msg.topic == m.cfg.Alarms[0].Topic:
		m.alarm = msg.payload
		if m.alarmActive() && m.cfg.Watchdog.AlarmLatch {
			m.latched = true
		}
	case msg.topic == simPowerTopic:
		m.power = msg.payload
	case msg.topic == topics.AlarmReset:
		if msg.payload == "RESET" && !m.alarmActive() {
			m.latched = false
		}
	case msg.topic == topics.LockdownSet:
		m.onLockdown(msg.payload == "ON", now)
	default:
		for i, dc := range m.cfg.Doors {
			if topics.Door(dc.ID).Set == msg.topic {
				m.onCommand(i, msg.payload, now)
			}
		}
	}
}

func (m *simModel) onLockdown(on bool, now time.Time) {
	if !on {
		m.lockdown = map[bool]bool{false: true}
		return
	}
	sure, maybe := false, false
	for i, dc := range m.cfg.Doors {
		if dc.FailMode != config.FailSafe {
			continue // lockdown powers only fail-safe locks
		}
		s, mb := m.doorHazard(i, now)
		sure, maybe = sure || s, maybe || mb
	}
	switch {
	case sure: // refused
	case maybe:
		m.lockdown[true] = true
	default:
		m.lockdown = map[bool]bool{true: true}
	}
}

func (m *simModel) onCommand(i int, payload string, now time.Time) {
	var c Command
	var req Request
	switch payload {
	case "LOCK":
		c, req = CommandLock, RequestLock
	case "UNLOCK":
		c, req = CommandUnlock, RequestUnlock
	default:
		return // OPEN ends by itself; garbage changes nothing
	}
	mode := FailSafe
	if m.cfg.Doors[i].FailMode == config.FailSecure {
		mode = FailSecure
	}
	powers := Refusal(mode, Hazards(0).With(HazardAlarm), req) != ""
	sure, maybe := m.doorHazard(i, now)
	switch {
	case powers && sure: // refused
	case powers && maybe:
		m.cmds[i][c] = true
	default:
		m.cmds[i] = map[Command]bool{c: true}
	}
}

// finalPowers is every lock power door i may have after quiet.
func (m *simModel) finalPowers(i int, mode FailMode) map[bool]bool {
	if sure, _ := m.doorHazard(i, simForever); sure {
		return map[bool]bool{false: true}
	}
	out := map[bool]bool{}
	for ld := range m.lockdown {
		for c := range m.cmds[i] {
			out[policy.Decide(policy.Inputs{Mode: mode, Lockdown: ld, Command: c}).Power] = true
		}
	}
	return out
}

// ---- one schedule ----

type simRun struct {
	t     testing.TB
	seed  uint64
	flags simFlags
	rnd   *rand.Rand
	clk   *fakeClock
	l     *loop
	drv   *simOutputs
	cfg   *config.Config
	model *simModel

	publishers map[string][]simMsg // each publisher's messages not yet at the broker's client
	inbox      []simMsg            // at the client, in the broker's order
	brokerLog  []simMsg            // every message the broker sent, in order
	handed     int                 // messages handed to the loop
	published  map[string]string   // retained topic -> last payload the bridge published
	lastTick   time.Time
	upsAt      time.Time // when the loop last had a power reading
	trace      []string
	step       int
}

func simConfig(rnd *rand.Rand) *config.Config {
	cfg := testConfig("tcp://127.0.0.1:1")
	cfg.Watchdog.RelockDelay = simRelockDelay
	cfg.Watchdog.AlarmLatch = rnd.IntN(2) == 0
	cfg.Drivers = []config.Driver{{ID: "sim", Type: "sim"}}
	cfg.Doors = nil
	n := 2 + rnd.IntN(4)
	for i := range n {
		d := config.Door{ID: fmt.Sprintf("d%d", i), Name: fmt.Sprintf("Door %d", i),
			Relay: config.Line{Driver: "sim", Channel: strconv.Itoa(i), ActiveLow: rnd.IntN(3) == 0}, UnlockTime: simUnlockTime}
		if rnd.IntN(2) == 0 {
			d.FailMode = config.FailSafe
			if rnd.IntN(4) == 0 {
				hold := false
				d.PowerRelease = &hold
			}
		} else {
			d.FailMode, d.MechanicalEgress = config.FailSecure, true
		}
		cfg.Doors = append(cfg.Doors, d)
	}
	cfg.Power = []config.PowerSource{{Type: config.PowerMQTT, Name: "ups", Topic: simPowerTopic,
		PayloadOK: "OL", PayloadLost: "OB", PollInterval: time.Second, Timeout: 10 * time.Second}}
	return cfg
}

func runSimulation(t testing.TB, seed uint64, flags simFlags) (err error) {
	r := &simRun{t: t, seed: seed, flags: flags, rnd: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)),
		clk: &fakeClock{t: time.Unix(1_800_000_000, 0)}, publishers: map[string][]simMsg{}, published: map[string]string{}}
	r.cfg = simConfig(r.rnd)
	if err := r.cfg.Validate(); err != nil {
		t.Fatalf("seed %d: config: %v", seed, err)
	}
	r.drv = &simOutputs{outs: map[string]*simOut{}}
	for _, d := range r.cfg.Doors {
		r.drv.outs[d.Relay.Channel] = &simOut{}
	}
	b, oerr := Open(r.cfg, Options{Log: testLogger(t), Clock: r.clk, Version: "sim", TickInterval: simTick,
		Drivers: map[string]drivers.Driver{"sim": r.drv}})
	if oerr != nil {
		t.Fatalf("seed %d: Open: %v", seed, oerr)
	}
	defer r.close(b)
	for _, d := range b.doors {
		// The simulation tells a held write it is overdue, on its clock.
		d.relay.deadline = time.Hour
	}
	r.l = newLoop(b)
	r.l.mq = queueLink(b, publishQueue)
	r.start()
	defer func() {
		if err != nil {
			keep := 25
			if simReplaying {
				keep = len(r.trace)
			}
			err = fmt.Errorf("seed %d, step %d: %w\nconfig: %s\nbridge: %s\nlast steps:\n  %s", seed, r.step, err, r.describeConfig(),
				r.describeLoop(), strings.Join(r.trace[max(0, len(r.trace)-keep):], "\n  "))
		}
	}()
	steps := 40 + r.rnd.IntN(80)
	for r.step = 1; r.step <= steps; r.step++ {
		if err := r.randomStep(); err != nil {
			return err
		}
	}
	return r.finish()
}

func (r *simRun) describeConfig() string {
	var parts []string
	for _, d := range r.cfg.Doors {
		s := d.ID + ":" + d.FailMode
		if d.Relay.ActiveLow {
			s += ",active_low"
		}
		if !d.ReleasesOnPowerLoss() {
			s += ",power_release=false"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("alarm_latch %v, doors %s", r.cfg.Watchdog.AlarmLatch, strings.Join(parts, " "))
}

func (r *simRun) describeLoop() string {
	l := r.l
	parts := []string{fmt.Sprintf("hazards %v latched %v lockdown %v", l.effective, l.latched, l.lockdown)}
	for i, d := range l.b.doors {
		o := r.drv.outs[d.cfg.Relay.Channel]
		o.mu.Lock()
		fault, writes, held := o.fault, o.writes, o.blocked != nil
		o.mu.Unlock()
		d.relay.mu.Lock()
		rs := fmt.Sprintf("writer want %v seq %d wrote %d busy %d err %v", d.relay.want, d.relay.seq, d.relay.wrote, d.relay.busy, d.relay.st.err)
		d.relay.mu.Unlock()
		parts = append(parts, fmt.Sprintf("%s: line power %v (fault %v, %d writes, held %v), loop power %v fault %v cause %s command %v, %s",
			d.cfg.ID, r.power(i), fault, writes, held, d.power, d.fault, d.cause, d.command, rs))
	}
	return strings.Join(parts, "; ")
}

func (r *simRun) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf("%4d %7s  ", r.step, r.clk.t.Sub(time.Unix(1_800_000_000, 0)).Round(time.Millisecond))+fmt.Sprintf(format, args...))
}

// keepLink keeps the broker link proven: the simulation is about messages
// and relays, not heartbeats.
func (r *simRun) keepLink() {
	l := r.l
	l.connected, l.subscribed, l.hbRecvAt, l.hbSentAt = true, true, r.clk.t, r.clk.t
}

// start brings the loop to its idle state: the alarm clear, mains on, every
// door locked, the startup hazard past.
func (r *simRun) start() {
	r.keepLink()
	r.l.evaluate("startup")
	r.l.flushLater()
	r.lastTick = r.clk.t
	r.hand(simMsg{from: "panel", topic: r.cfg.Alarms[0].Topic, payload: "OFF", retained: true})
	r.hand(simMsg{from: "ups", topic: simPowerTopic, payload: "OL", retained: true})
	r.advance(simRelockDelay + 2*simTick)
	r.upsAt = r.clk.t
	r.model = newSimModel(r.cfg, r.clk.t)
	r.brokerLog, r.handed = nil, 0
}

// hand gives msg straight to the loop (set-up only).
func (r *simRun) hand(msg simMsg) {
	r.keepLink()
	r.l.handle(evMessage{topic: msg.topic, payload: []byte(msg.payload), retained: msg.retained})
	r.afterEvent()
}

func (r *simRun) afterEvent() {
	r.settle()
	if r.l.release == nil {
		r.l.flushLater() // as the loop does
	}
	r.drain()
}

// settle waits until every relay writer has written what it was asked, or
// is held by its output, and hands the loop their news, as its run would,
// until there is none.
func (r *simRun) settle() {
	for {
		r.waitWriters()
		select {
		case <-r.l.b.relayNews:
			r.keepLink()
			r.l.onRelayNews()
		default:
			return
		}
	}
}

// waitWriters waits (real time: the writers are goroutines) until every
// relay writer is idle or held by the simulation, and stamps new held
// writes with the fake time.
func (r *simRun) waitWriters() {
	deadline := time.Now().Add(5 * time.Second)
	for !r.writersIdle() {
		if time.Now().After(deadline) {
			r.t.Fatalf("seed %d: relay writers still busy after 5 s: %s", r.seed, r.describeLoop())
		}
		runtime.Gosched()
	}
}

func (r *simRun) writersIdle() bool {
	for _, d := range r.l.b.doors {
		rl := d.relay
		rl.mu.Lock()
		busy, wrote, seq := rl.busy, rl.wrote, rl.seq
		rl.mu.Unlock()
		o := r.drv.outs[d.cfg.Relay.Channel]
		o.mu.Lock()
		w := o.blocked
		if w != nil && w.started.IsZero() {
			w.started = r.clk.t
		}
		o.mu.Unlock()
		if (busy != 0 && w == nil) || (busy == 0 && wrote != seq) {
			return false
		}
	}
	return true
}

// nextTimed returns the next moment the simulation acts on a held write:
// a slow write ends, or a held write passes the writer's deadline.
func (r *simRun) nextTimed() (time.Time, func()) {
	var at time.Time
	var act func()
	for _, d := range r.l.b.doors {
		o, rl := r.drv.outs[d.cfg.Relay.Channel], d.relay
		o.mu.Lock()
		w, fault, delay := o.blocked, o.fault, o.delay
		o.mu.Unlock()
		if w == nil {
			continue
		}
		if !w.overdue {
			if t := w.started.Add(writeDeadline); at.IsZero() || t.Before(at) {
				at, act = t, func() {
					rl.mu.Lock()
					seq := rl.busy
					rl.mu.Unlock()
					w.overdue = true
					rl.overdue(seq)
				}
			}
		}
		if fault == faultSlow {
			if t := w.started.Add(delay); at.IsZero() || t.Before(at) {
				at, act = t, o.release
			}
		}
	}
	return at, act
}

// drain reads what the bridge published.
func (r *simRun) drain() {
	for {
		select {
		case p := <-r.l.mq.queue:
			if p.retained {
				r.published[p.topic] = p.payload
			}
		default:
			return
		}
	}
}

// advance moves the clock by d, ticking the loop when its timer would fire
// and ending or timing out held writes when their time comes.
func (r *simRun) advance(d time.Duration) {
	end := r.clk.t.Add(d)
	for {
		next := r.l.nextTick(r.lastTick)
		at, act := r.nextTimed()
		if act != nil && at.Before(next) {
			next = at
		} else {
			act = nil
		}
		if next.After(end) {
			break
		}
		if next.After(r.clk.t) {
			r.clk.t = next
		}
		r.keepLink()
		if act != nil {
			act()
			r.afterEvent()
			continue
		}
		r.lastTick = r.clk.t
		r.l.onTick()
		r.afterEvent()
		if simReplaying {
			r.logf("tick: %s", r.describeLoop())
		}
	}
	r.clk.t = end
}

var simPayloads = map[string][]string{
	"command":  {"LOCK", "UNLOCK", "LOCK", "UNLOCK", "OPEN", "unlock"},
	"alarm":    {"ON", "OFF", "OFF", "FIRE?"},
	"power":    {"OL", "OL", "OB", "??"},
	"lockdown": {"ON", "OFF", "OFF"},
}

func (r *simRun) pick(kind string) string {
	p := simPayloads[kind]
	return p[r.rnd.IntN(len(p))]
}

// publish queues a burst of 1-4 messages from one publisher, back to back.
func (r *simRun) publish() {
	topics := r.l.b.topics
	from := []string{"ha", "ha", "ha2", "panel", "ups"}[r.rnd.IntN(5)]
	n := 1 + r.rnd.IntN(4)
	for range n {
		var m simMsg
		switch from {
		case "panel":
			m = simMsg{topic: r.cfg.Alarms[0].Topic, payload: r.pick("alarm"), retained: true}
		case "ups":
			m = simMsg{topic: simPowerTopic, payload: r.pick("power"), retained: true}
		default:
			switch k := r.rnd.IntN(10); {
			case k < 7:
				d := r.cfg.Doors[r.rnd.IntN(len(r.cfg.Doors))]
				m = simMsg{topic: topics.Door(d.ID).Set, payload: r.pick("command")}
			case k < 9:
				m = simMsg{topic: topics.AlarmReset, payload: "RESET"}
			default:
				m = simMsg{topic: topics.LockdownSet, payload: r.pick("lockdown")}
			}
		}
		m.from = from
		r.publishers[from] = append(r.publishers[from], m)
		r.logf("publish %v", m)
	}
}

// forward: the broker sends a publisher's oldest message on to the client.
func (r *simRun) forward() bool {
	var ready []string
	for _, p := range []string{"ha", "ha2", "panel", "ups"} {
		if len(r.publishers[p]) > 0 {
			ready = append(ready, p)
		}
	}
	if len(ready) == 0 {
		return false
	}
	p := ready[r.rnd.IntN(len(ready))]
	m := r.publishers[p][0]
	r.publishers[p] = r.publishers[p][1:]
	r.inbox = append(r.inbox, m)
	r.brokerLog = append(r.brokerLog, m)
	return true
}

// deliver: the client hands a message to the loop, the oldest (or, with
// flags.reorder, any); the model takes the broker's next one.
func (r *simRun) deliver() error {
	if len(r.inbox) == 0 {
		return nil
	}
	i := 0
	if r.flags.reorder {
		i = r.rnd.IntN(len(r.inbox))
	}
	m := r.inbox[i]
	r.inbox = append(r.inbox[:i], r.inbox[i+1:]...)
	r.model.deliver(r.brokerLog[r.handed], r.l.b.topics, r.clk.t)
	r.handed++
	r.logf("deliver %v", m)
	if m.from == "ups" {
		r.upsAt = r.clk.t
	}
	r.keepLink()
	r.l.handle(evMessage{topic: m.topic, payload: []byte(m.payload), retained: m.retained})
	r.afterEvent()
	return r.checkSafety()
}

// setFault breaks a random door's relay writes (error, slow or hang), or
// mends them.
func (r *simRun) setFault() {
	i := r.rnd.IntN(len(r.cfg.Doors))
	o := r.drv.outs[r.cfg.Doors[i].Relay.Channel]
	o.mu.Lock()
	faulted := o.fault != faultNone
	o.mu.Unlock()
	if faulted {
		r.clearFault(i)
		r.logf("fault cleared on %s", r.cfg.Doors[i].ID)
		r.afterEvent()
		return
	}
	f := []simFault{faultError, faultSlow, faultHang}[r.rnd.IntN(3)]
	delay := time.Duration(50+r.rnd.IntN(1500)) * time.Millisecond
	o.mu.Lock()
	o.fault, o.delay = f, delay
	o.mu.Unlock()
	if f == faultSlow {
		r.logf("fault %s (%v) on %s", f, delay, r.cfg.Doors[i].ID)
	} else {
		r.logf("fault %s on %s", f, r.cfg.Doors[i].ID)
	}
	r.model.faultUntil[i] = simForever // until cleared and settled
}

// clearFault mends door i's relay: a held write happens, a failed one is
// tried again at once.
func (r *simRun) clearFault(i int) {
	o := r.drv.outs[r.cfg.Doors[i].Relay.Channel]
	o.mu.Lock()
	o.fault = faultNone
	o.mu.Unlock()
	o.release()
	rl := r.l.b.doors[i].relay
	rl.kick()
	// The writer tries again now: wait until it has (it cannot fail).
	deadline := time.Now().Add(5 * time.Second)
	for {
		rl.mu.Lock()
		failed := rl.st.err != nil
		rl.mu.Unlock()
		if !failed {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("seed %d: door %s's relay still failing 5 s after its fault was removed", r.seed, r.cfg.Doors[i].ID)
		}
		runtime.Gosched()
	}
}

// settleFaults ends the model's driver hazard window of doors whose relay
// works again.
func (r *simRun) settleFaults() {
	for i, d := range r.cfg.Doors {
		if !r.drv.outs[d.Relay.Channel].mayLag() && r.model.faultUntil[i] == simForever {
			// recovered at the next retry tick at the latest, then held
			r.model.faultUntil[i] = r.clk.t.Add(simRelockDelay + 4*simTick)
		}
	}
}

func (r *simRun) randomStep() error {
	switch k := r.rnd.IntN(100); {
	case k < 25:
		r.publish()
	case k < 45:
		r.forward()
	case k < 75:
		return r.deliver()
	case k < 82:
		r.setFault()
	default:
		if len(r.inbox) > 0 {
			return r.deliver() // time moves only once the client has handed over what it has
		}
		if err := r.freshPower(); err != nil {
			return err
		}
		d := time.Duration(r.rnd.IntN(400)) * time.Millisecond
		r.logf("advance %v", d)
		r.settleFaults()
		r.advance(d)
		return r.checkSafety()
	}
	return nil
}

// freshPower has the UPS repeat its value when it said nothing for 3 s, as
// a real one does (a reading holds for the source's timeout, 10 s here,
// R24), and its messages reach the loop before time moves on.
func (r *simRun) freshPower() error {
	if r.clk.t.Sub(r.upsAt) < 3*time.Second {
		return nil
	}
	last := r.model.power
	if q := r.publishers["ups"]; len(q) > 0 {
		last = q[len(q)-1].payload
	}
	r.publishers["ups"] = append(r.publishers["ups"], simMsg{from: "ups", topic: simPowerTopic, payload: last, retained: true})
	r.logf("publish ups repeats %q", last)
	for _, m := range r.publishers["ups"] {
		r.inbox = append(r.inbox, m)
		r.brokerLog = append(r.brokerLog, m)
	}
	r.publishers["ups"] = nil
	for len(r.inbox) > 0 {
		if err := r.deliver(); err != nil {
			return err
		}
	}
	return nil
}

// finish delivers everything, clears the faults, lets everything settle,
// and checks the final state.
func (r *simRun) finish() error {
	r.logf("finish: deliver everything, clear faults, quiet")
	for r.forward() {
	}
	for len(r.inbox) > 0 {
		if err := r.deliver(); err != nil {
			return err
		}
	}
	for i := range r.cfg.Doors {
		r.clearFault(i)
	}
	r.afterEvent()
	r.settleFaults()
	r.advance(simRelockDelay + simUnlockTime + 10*simTick)
	if err := r.checkSafety(); err != nil {
		return err
	}
	return r.checkFinal()
}

// power is door i's real lock power.
func (r *simRun) power(i int) bool {
	dc := r.cfg.Doors[i]
	return r.drv.outs[dc.Relay.Channel].Level() != dc.Relay.ActiveLow
}

// checkSafety: no lock powered under a hazard (but for the battery hold and
// a relay that cannot be written), the latch held as the model says, and
// the published state only what the relays do.
func (r *simRun) checkSafety() error {
	for i, dc := range r.cfg.Doors {
		o := r.drv.outs[dc.Relay.Channel]
		if sure, _ := r.model.doorHazard(i, r.clk.t); sure && r.power(i) && !o.mayLag() {
			return fmt.Errorf("R1: door %s powered under a hazard (alarm %q, latched %v, power %q)", dc.ID, r.model.alarm, r.model.latched, r.model.power)
		}
	}
	if r.cfg.Watchdog.AlarmLatch && r.model.latched != r.l.latched {
		return fmt.Errorf("R4: latch %v, the broker's order says %v", r.l.latched, r.model.latched)
	}
	return r.checkPublished()
}

// checkPublished: a door's published state and lock power are what its
// relay does, or JAMMED while the relay cannot be written.
func (r *simRun) checkPublished() error {
	if r.l.release != nil {
		// A release being written publishes once every write is done or
		// overdue (at most writeDeadline): until then the state is the
		// one before it.
		return nil
	}
	for i, dc := range r.cfg.Doors {
		dt := r.l.b.topics.Door(dc.ID)
		state, energized := r.published[dt.State], r.published[dt.Energized]
		if state == "" {
			continue
		}
		if state == StateJammed {
			if simItem6Fixed && energized != "None" && energized != "" && energized != onOff(r.power(i)) {
				return fmt.Errorf("door %s JAMMED: published energized %q, the relay is %v (issue 11 item 6)", dc.ID, energized, onOff(r.power(i)))
			}
			continue
		}
		if energized != onOff(r.power(i)) {
			return fmt.Errorf("door %s: published energized %q, the relay is %v", dc.ID, energized, onOff(r.power(i)))
		}
		mode := r.l.b.doors[i].mode
		if locked := state == StateLocked; locked != mode.Locked(r.power(i)) {
			return fmt.Errorf("door %s: published %q, the relay is %v", dc.ID, state, onOff(r.power(i)))
		}
	}
	return nil
}

// checkFinal: after quiet every door is where the broker's order of
// commands, alarm and power values puts it (R21).
func (r *simRun) checkFinal() error {
	for i, dc := range r.cfg.Doors {
		want := r.model.finalPowers(i, r.l.b.doors[i].mode)
		if !want[r.power(i)] {
			return fmt.Errorf("R21: after quiet door %s (%s) has lock power %v; the broker's order implies %v (alarm %q, latched %v, power %q, lockdown %v, commands %v)",
				dc.ID, dc.FailMode, r.power(i), keys(want), r.model.alarm, r.model.latched, r.model.power, keys(r.model.lockdown), keys(r.model.cmds[i]))
		}
	}
	return nil
}

func keys[K comparable](m map[K]bool) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}

// close lets every held write end and stops the bridge's relay writers.
func (r *simRun) close(b *Bridge) {
	for _, o := range r.drv.outs {
		o.mu.Lock()
		o.fault = faultNone
		o.mu.Unlock()
		o.release()
	}
	b.Close()
}

// A board that answers every write, but more slowly than the relay
// writer's deadline (400 ms; a Modbus board may take up to its 500 ms
// timeout), must still relock its door once the hazards clear, and keep it
// locked: today each relock write is overdue, the door goes JAMMED, its
// driver hazard asks for the lock off, and the door cycles between powered
// and released (doorbench --only faults shows it on the slow doors).
func TestSlowBoardRelocksAndStays(t *testing.T) {
	if os.Getenv("DOORBRIDGE_TEST_SLOW_BOARD") == "" {
		t.Skip("known bug (reported by net, issue 11 item 3 follow-up): a board slower than writeDeadline (300 ms) but inside the Modbus timeout (500 ms) makes its door cycle JAMMED/relocked and never stay locked; DOORBRIDGE_TEST_SLOW_BOARD=1 runs this test")
	}
	h := newHarness(t, func(c *config.Config) { c.Watchdog.AlarmLatch = false })
	h.ready()
	h.sim.SetFault("0", sim.Fault{Delay: 400 * time.Millisecond})
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "the alarm releases the maglock on the slow board")
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitPower("0", true, wait, "the maglock on the slow board relocks once the alarm is clear")
	// Locked now; no hazard comes: the relay must not change again.
	n := len(h.sim.History("0"))
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got := len(h.sim.History("0")); got != n || !h.power("0") {
			t.Fatalf("the maglock on the slow board changed again after it relocked with no hazard (history %v): it cycles", h.sim.History("0"))
		}
		time.Sleep(50 * time.Millisecond) // watching for a change that must not come
	}
}
