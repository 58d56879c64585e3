package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	"github.com/doorbridge/doorbridge/mqttapi"
	"github.com/doorbridge/doorbridge/policy"
)

// loop is the single owner of door state. Every field is touched only by the
// goroutine running run(). Its state is grouped by concern; the groups are
// embedded, so l.connected is l.brokerLink.connected.
type loop struct {
	b   *Bridge
	log *slog.Logger
	mq  *mqttLink

	brokerLink     // the MQTT connection and the heartbeats that prove it
	overtakeState  // safety messages handled before commands delivered earlier (inbound.go)
	hazardInputs   // what raises the hazards
	hazardState    // the hazards raised, and held for relock_delay
	publishedState // what was announced and published, to publish only changes
	deferredWork   // what waits until the relays are written
	reportLimits   // floods of records summarised

	live  liveness   // systemd and hardware watchdogs, fed only from here (liveness.go)
	drill drillState // release drill reminder (R20)
}

// brokerLink is the MQTT link as the loop sees it.
type brokerLink struct {
	gen         uint64 // the current connection
	lostGen     uint64 // the newest connection known lost: a later "connected" for it is stale
	hbSeq       uint64 // the last heartbeat probe sent
	hbAcked     uint64 // the newest probe whose echo came back: older echoes are replays
	connected   bool
	subscribed  bool
	everLinked  bool // the link was healthy once: later losses are "broker", not "startup"
	hbSentAt    time.Time
	hbRecvAt    time.Time
	linkHealthy bool
	// subscribedAt is when this connection's subscriptions were acknowledged;
	// dropRequested is set once a silent connection was dropped.
	subscribedAt  time.Time
	dropRequested bool
	// announcePending: the first echo came, discovery waits until every
	// message of the other queue that came before it (seq below
	// announceSeq; the retained discovery configs among them) is handled.
	// otherInHand: a message taken from the other queue is not handled yet.
	announcePending bool
	announceSeq     uint64
	otherInHand     bool
}

// overtakeState: hzSeq is the newest safety message handled while a hazard
// was in force (before or after it), hzSeen those hazards; overtaken holds
// them while a command delivered before hzSeq is handled (inbound.go).
type overtakeState struct {
	hzSeq     uint64
	hzSeen    Hazards
	overtaken Hazards
}

// hazardInputs is what the hazards are computed from (rawHazards).
type hazardInputs struct {
	alarms     []alarmSource
	latched    bool
	lockdown   bool
	powerLost  map[string]bool
	powerSince time.Time // battery.since(): now minus it is the time on battery counted (zero: power OK)
	battery    batteryBudget
	mqttPower  []mqttPower
	shutting   bool
	wdHazard   bool
}

// hazardState is the hazards as the loop last computed them.
type hazardState struct {
	raw          Hazards // hazards active now
	effective    Hazards // what the policy sees: raw, held for relock_delay after the last clears
	healthySince time.Time
	hazardRises  uint64                // how many times a hazard rose: a code check outlived by one is void
	hazardSince  [numHazards]time.Time // when each raw hazard rose (metrics)
}

// publishedState is what the loop announced and published.
type publishedState struct {
	discoveryMsgs    []discovery.Message // this config's discovery payloads
	announced        announcement        // what earlier starts announced (discovery.go)
	republishPending bool
	// republishRequests asked for the pending republish, the last on
	// republishTopic.
	republishRequests int
	republishTopic    string

	pub   map[string]string // last retained payload published per topic
	cache pubCache          // what publishState and snapshot rebuild only on change (pubcache.go)
	// what the stored snapshot was built from, to build it only on change
	snapHz      Hazards
	snapDoorHz  []Hazards
	snapChanged []int  // the doors whose view changed, reused by every snapshot
	unsaved     string // the state records that cannot be written, as last published
}

// deferredWork is what an event leaves for after its relay writes.
type deferredWork struct {
	reports     []relayReport   // relay changes of the current evaluation, reported once all are written
	release     *pendingRelease // a hazard's release whose writes are not all done
	later       []func()        // log lines and audit events held until the relays are written (audit.go)
	stateToSave []pendingSave   // records to write to state_dir after the relays, first of all (state.go)
	codesToSave bool            // code guards changed: write them to state_dir after the relays (codes.go)
}

// reportLimits summarise floods of records.
type reportLimits struct {
	rejects    rejectLimiter // rejected commands reported in full, or summarised (rejects.go)
	unchanged  rejectLimiter // likewise, accepted commands that changed nothing
	safetyRate safetyLimiter // repeated alarm and hazard records summarised (safetyrate.go)
}

func newLoop(b *Bridge) *loop {
	l := &loop{
		b:              b,
		log:            b.log,
		hazardInputs:   hazardInputs{powerLost: map[string]bool{}},
		publishedState: publishedState{pub: map[string]string{}},
		reportLimits:   reportLimits{unchanged: rejectLimiter{unchanged: true}},
	}
	for _, a := range b.cfg.Alarms {
		l.alarms = append(l.alarms, newAlarmSource(a))
	}
	for _, p := range b.cfg.Power {
		if p.Type == "mqtt" {
			l.mqttPower = append(l.mqttPower, mqttPower{cfg: p})
		}
	}
	l.loadState() // the latch, lockdown, the battery budget (state.go)
	if why := b.loadCodeState(l.now()); why != "" {
		l.record(auditEvent{Kind: "code", Outcome: "locked_out", Detail: why, Origin: "startup"})
	}
	// R24: a power source counts as lost until it has reported; that time
	// counts against the battery budget like any other on battery.
	for _, p := range b.cfg.Power {
		l.powerLost[p.Name] = true
	}
	if len(b.cfg.Power) > 0 && l.battery.mains(true, l.now()) {
		l.saveLater(batteryRecord, l.battery.encode())
	}
	l.powerSince = l.battery.since()
	if b.in != nil {
		b.in.isSafety, b.in.isCmd = l.safetyTopics(), l.commandTopics()
	}
	// raw starts empty so the first evaluate raises (logs, counts, and sets
	// doorbridge_hazard_active for) the start-up hazards.
	l.effective = l.rawHazards(false)
	l.startObserving()
	return l
}

// afterEvent runs the loop's deferred work after an event or a tick. Logs
// and audit events wait until the relays of a release are written (or
// failed: at most writeDeadline). State records do not: the relay writes
// of that release are requested by now (the writers write them on their
// own goroutines, which a disk write on this one does not hold up), so
// "relays first, then the latch" holds, and a power cut during a slow
// release write must not find the fire latch missing.
func (l *loop) afterEvent() {
	if l.release == nil {
		l.flushLater()
		return
	}
	l.flushSaves()
}

func (l *loop) run(ctx context.Context) error {
	// The timer is re-armed after every event and tick for the next
	// deadline (timers.go): an idle bridge sleeps instead of ticking.
	t := time.NewTimer(l.b.tick)
	defer t.Stop()
	l.b.wd.checkin()
	lastTick := l.now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-l.b.events:
			l.b.wd.checkin() // handling an event is as alive as a tick
			l.handle(ev)
		case e := <-l.b.in.safety:
			l.b.wd.checkin()
			l.onQueued(e)
		case e := <-l.b.in.other:
			l.b.wd.checkin()
			l.otherInHand = true
			// Every safety message queued before e is in the safety queue
			// now: it goes first (inbound.go says why that is safe).
			for n := len(l.b.in.safety); n > 0; n-- {
				l.onQueued(<-l.b.in.safety)
			}
			l.onQueued(e)
			l.otherInHand = false
			if l.announcePending && (e.seq > l.announceSeq || len(l.b.in.other) == 0) {
				l.announceOnLink()
			}
		case <-l.b.relayNews:
			l.b.wd.checkin()
			l.onRelayNews()
		case <-t.C:
			l.b.wd.checkin()
			lastTick = l.now()
			l.onTick()
			l.feedWatchdogs()
		}
		l.afterEvent()
		t.Reset(l.nextTick(lastTick).Sub(l.now()))
	}
}

func (l *loop) now() time.Time { return l.b.clock.Now() }

func (l *loop) handle(ev event) {
	switch e := ev.(type) {
	case evConnected:
		l.onConnected(e.gen)
	case evDisconnected:
		l.onDisconnected(e)
	case evSubscribed:
		l.onSubscribed(e)
	case evMessage:
		l.onMessage(e)
	case evPower:
		l.onPower(e)
	case evCodeChecked:
		l.onCodeChecked(e)
	case evFunc:
		e(l)
	default:
		l.log.Error("unknown event", "type", fmt.Sprintf("%T", ev))
	}
}

// onQueued handles a message from the inbound queues: only one of the
// current connection counts (a later connection starts from scratch).
func (l *loop) onQueued(e evMessage) {
	l.b.in.taken(e)
	if e.gen != l.gen {
		return
	}
	if e.safety {
		before := l.effective
		l.onMessage(e)
		if hz := before | l.effective; hz.Any() {
			l.hzSeq, l.hzSeen = e.seq, hz
		}
		return
	}
	if e.seq < l.hzSeq {
		// A safety message delivered after this one was handled first,
		// while a hazard held: judge this one under that hazard too.
		l.overtaken = l.hzSeen
		defer func() { l.overtaken = 0 }()
	}
	l.onMessage(e)
}

// onDisconnected marks connection e.gen lost. Each connection reports its
// own loss, so a late report never touches a newer connection.
func (l *loop) onDisconnected(e evDisconnected) {
	l.lostGen = max(l.lostGen, e.gen)
	if e.gen != l.gen || !l.connected {
		return
	}
	l.connected, l.subscribed = false, false
	l.afterIO(func() { l.log.Warn("MQTT connection lost", "err", e.err, "gen", e.gen) })
	l.evaluate("mqtt:connection_lost")
}

func (l *loop) onConnected(gen uint64) {
	if gen <= l.lostGen || gen < l.gen || (gen == l.gen && l.connected) {
		return // stale (already lost, or older) or a repeat
	}
	l.gen = gen
	l.connected, l.subscribed, l.dropRequested = true, false, false
	l.hbRecvAt = time.Time{}
	l.announcePending = false
	// What the alarm sources said came through the old connection. The
	// broker may be a new one (restarted, or a failover peer) without the
	// retained values: each source is unknown, so alarm, until it reports
	// again on this connection.
	for i := range l.alarms {
		l.alarms[i].reset()
	}
	l.resetMQTTPower()
	l.b.m.mqttReconnects.Inc()
	// The link has logged the connection, with its broker, at INFO: one
	// line per event.
	l.log.Debug("MQTT connected", "gen", gen)
	// Everything retained is published again on a new connection: the
	// broker may have restarted without its retained messages.
	l.forgetPublished()
	l.mq.publish(l.b.topics.Availability, mqttapi.Online, true)
	l.mq.subscribe(gen, l.subscriptions())
	l.evaluate("mqtt:connected")
}

// subscriptions are the bridge's filters, one SUBSCRIBE per group, in
// order: the safety ones first, so that their retained values come before
// anything a command flood sends (mqttLink.subscribe); among them the
// alarm sources' availability last, so that a detector's value is known
// before its availability (kept beyond max_sources only for a source
// seen: review 12 F2, where 100 lamps' availabilities came first and
// pushed out the detector's own). The first safetyGroups are safety.
func (l *loop) subscriptions() [][]string {
	t := l.b.topics
	var values, avail []string
	isAvail := map[string]bool{}
	for _, a := range l.alarms {
		if a.cfg.AvailabilityTopic != "" {
			isAvail[a.cfg.AvailabilityTopic] = true
		}
	}
	for _, f := range l.safetyFilters() {
		if isAvail[f] {
			avail = append(avail, f)
		} else {
			values = append(values, f)
		}
	}
	return [][]string{values, avail, {t.DoorCommandWild, t.Republish, t.discoveryWild(l.b.cfg.MQTT.DiscoveryPrefix)}}
}

// safetyGroups is how many of subscriptions' groups are safety filters.
const safetyGroups = 2

func (l *loop) onSubscribed(e evSubscribed) {
	if e.gen != l.gen || !l.connected {
		return
	}
	l.subscribed = true
	l.subscribedAt = l.now()
	l.sendHeartbeat()
}

// sendHeartbeat publishes the round-trip probe: the link counts as healthy
// only while these come back through the broker in time. Each is signed
// (heartbeat.go): only this process's own echoes count.
func (l *loop) sendHeartbeat() {
	l.hbSentAt = l.now()
	l.hbSeq++
	l.mq.probe(l.b.hb.probe(l.gen, l.hbSeq, time.Now().UnixNano()))
}

func (l *loop) onHeartbeat(e evMessage) {
	echo, ok := l.b.hb.verify(e.payload)
	if !ok || e.retained || echo.gen != l.gen || echo.seq <= l.hbAcked {
		// Forged, retained (it may have been left there long ago), a late
		// echo from an older connection, or a replay: proves nothing.
		return
	}
	l.hbAcked = echo.seq
	first := l.hbRecvAt.IsZero()
	l.hbRecvAt = l.now()
	l.b.m.heartbeatRTT.Observe(time.Since(time.Unix(0, echo.ns)).Seconds())
	if !l.linkHealthy {
		l.evaluate("mqtt:heartbeat")
	}
	if first {
		// The retained messages of our subscriptions (alarm values, the
		// latch) came before this echo, and reached the loop before it:
		// the broker sent them first on this connection, paho hands them
		// over in that order, and they share its queue (inbound.go). Only
		// now is it safe to publish our own retained state without
		// overwriting something to restore. The retained discovery
		// configs came before it too, but wait in the other queue, which
		// the loop serves after the safety queue: what they say earlier
		// starts announced is read first (a stub republished for a
		// removed input, once in ten -race runs, before this).
		l.announcePending, l.announceSeq = true, e.seq
		if !l.otherInHand && len(l.b.in.other) == 0 {
			l.announceOnLink()
		}
	}
}

// announceOnLink publishes discovery once the broker's retained configs
// are read, and says what keeps the doors released.
func (l *loop) announceOnLink() {
	l.announcePending = false
	l.publishDiscovery()
	l.mq.unsubscribeDiscovery(l.gen, l.b.topics.discoveryWild(l.b.cfg.MQTT.DiscoveryPrefix))
	l.logWaiting()
}

func (l *loop) onTick() {
	now := l.now()
	if l.connected && l.subscribed && now.Sub(l.hbSentAt) >= l.b.cfg.Watchdog.HeartbeatInterval {
		l.sendHeartbeat()
	}
	l.dropSilentConnection(now)
	if l.b.wd.tripped.Load() {
		l.wdHazard = true
		l.afterIO(func() { l.log.Error("control loop resumed after the watchdog forced every relay off") })
	}
	l.evaluate("timer")
	if l.wdHazard {
		// The loop is alive again and has applied the hazard; the relock
		// delay now holds it until the loop has been healthy long enough.
		l.wdHazard = false
		l.b.wd.reset()
	}
	l.checkMQTTPower(now)
	l.checkDrill(now)
	l.reportRejectSummaries(now)
	l.reportSafetySummaries(now)
	l.mq.retryDropped(l.republishState)
}

// dropSilentConnection drops a connection whose heartbeat has not come back
// for twice heartbeat_timeout (the doors were released at heartbeat_timeout),
// so paho reconnects, to the next of mqtt.urls when there are several,
// instead of waiting for its keepalive. Once per connection.
func (l *loop) dropSilentConnection(now time.Time) {
	if !l.connected || !l.subscribed || l.dropRequested {
		return
	}
	last := l.hbRecvAt
	if last.IsZero() {
		last = l.subscribedAt
	}
	if silent := now.Sub(last); silent > 2*l.b.cfg.Watchdog.HeartbeatTimeout {
		l.dropRequested = true
		l.afterIO(func() {
			l.log.Warn("MQTT link silent: dropping the connection to reconnect", "since_heartbeat", silent.Round(time.Millisecond))
		})
		l.mq.dropConnection()
	}
}

// linkOK reports whether the broker link is up and proven by a recent heartbeat.
func (l *loop) linkOK(now time.Time) bool {
	return l.connected && l.subscribed && !l.hbRecvAt.IsZero() &&
		now.Sub(l.hbRecvAt) <= l.b.cfg.Watchdog.HeartbeatTimeout
}

// alarmActive reports whether any alarm entry is active (alarm.go).
func (h *hazardInputs) alarmActive() bool {
	for _, a := range h.alarms {
		if a.active() {
			return true
		}
	}
	return false
}

// powerOut reports whether any power source is lost.
func (h *hazardInputs) powerOut() bool {
	for _, lost := range h.powerLost {
		if lost {
			return true
		}
	}
	return false
}

// rawHazards is the hazards the loop's state raises now, before the relock
// hold; supervisionTrouble is updateSupervision's verdict. It decides only:
// no log, no audit, no change to the loop.
func (l *loop) rawHazards(supervisionTrouble bool) Hazards {
	var hz Hazards
	if !l.everLinked {
		hz = hz.With(HazardStartup)
	} else if !l.linkHealthy {
		hz = hz.With(HazardBroker)
	}
	if l.alarmActive() || l.latched {
		hz = hz.With(HazardAlarm)
	}
	if supervisionTrouble {
		hz = hz.With(HazardAlarmSupervision)
	}
	if l.powerOut() {
		hz = hz.With(HazardPower)
	}
	if l.shutting {
		hz = hz.With(HazardShutdown)
	}
	if l.wdHazard {
		hz = hz.With(HazardWatchdog)
	}
	return hz
}

// evaluate recomputes the hazards and every door's lock power, writes the
// relays that change, then publishes what changed. origin is what caused
// it, for the audit records and log lines of the changes it makes.
func (l *loop) evaluate(origin string) {
	start := time.Now() // real time, for the release latency
	now := l.now()
	healthy := l.linkOK(now)
	if healthy && !l.linkHealthy {
		l.log.Info("MQTT link healthy (heartbeat round trip)")
	} else if !healthy && l.linkHealthy {
		connected, since := l.connected, now.Sub(l.hbRecvAt).Round(time.Millisecond)
		l.afterIO(func() { l.log.Warn("MQTT link unhealthy", "connected", connected, "since_heartbeat", since) })
	}
	l.linkHealthy = healthy
	if healthy {
		l.everLinked = true
	}
	l.b.m.mqttConnected.Set(b2f(healthy))

	trouble, origin := l.updateSupervision(l.now(), origin)
	raw := l.rawHazards(trouble)
	rose := l.trackHazards(raw, origin)
	held := policy.Hold(policy.Held{Hazards: l.effective, HealthySince: l.healthySince}, raw, now, l.b.cfg.Watchdog.RelockDelay)
	if l.effective.Any() && !held.Hazards.Any() {
		cleared := l.effective.String()
		l.afterIO(func() { l.log.Info("healthy for relock_delay: hazards cleared", "held", cleared) })
	}
	l.effective, l.healthySince = held.Hazards, held.HealthySince

	// What the relay writers did since the last evaluation first: a door
	// whose write failed is decided with its driver hazard.
	l.collectRelays(now, origin)
	// The doors a drill must release: only an evaluation in which a
	// hazard rose can start one (trackRelease), so the other evaluations
	// (every command, every tick) skip the walk and its allocation.
	var armed []*door
	if rose.Any() {
		armed = l.armedFailSafe()
	}
	wrote := false
	for _, d := range l.b.doors {
		if l.applyDoor(d, now, origin) {
			wrote = true
		}
	}
	l.trackRelease(rose, wrote, start, armed, origin)
	l.reportRelays()
	if wrote && l.release != nil {
		// The writes of a release come first: the state follows with
		// their results (the next evaluation, from the writers' news),
		// and shows what was written.
		l.snapshot(now)
		return
	}
	l.publishState()
}

// trackHazards counts and logs hazards as they rise and fall (caused by
// origin), and returns those that rose.
func (l *loop) trackHazards(raw Hazards, origin string) (rose Hazards) {
	if raw == l.raw {
		return 0
	}
	defer func() {
		if rose != 0 {
			l.hazardRises++
		}
	}()
	for _, h := range AllHazards() {
		was, is := l.raw.Has(h), raw.Has(h)
		if is && !was {
			l.b.m.hazardsRaised.WithLabelValues(h.String()).Inc()
			l.hazardRaised(h)
			rose = rose.With(h)
			l.recordSafety(auditEvent{Kind: "hazard", Hazard: h.String(), Outcome: "raised", Origin: origin},
				func() {
					l.log.Log(context.Background(), hazardLevel(origin), "hazard raised", "hazard", h.String(), "origin", origin)
				})
		} else if was && !is {
			l.hazardCleared(h)
			l.recordSafety(auditEvent{Kind: "hazard", Hazard: h.String(), Outcome: "cleared", Origin: origin},
				func() { l.log.Info("hazard cleared", "hazard", h.String(), "origin", origin) })
		}
		l.b.m.hazardActive.WithLabelValues(h.String()).Set(b2f(is))
	}
	l.raw = raw
	return rose
}

// doorHazards are the hazards that apply to d: the global ones and its own.
func (l *loop) doorHazards(d *door, now time.Time) Hazards {
	var onBattery time.Duration
	if !l.powerSince.IsZero() {
		onBattery = now.Sub(l.powerSince)
	}
	return policy.DoorHazards(l.effective,
		policy.DoorState{Mode: d.mode, PowerRelease: d.cfg.ReleasesOnPowerLoss(), Fault: d.fault, FaultCleared: d.faultCleared},
		policy.Env{Now: now, RelockDelay: l.b.cfg.Watchdog.RelockDelay, OnBattery: onBattery, BatteryBudget: config.MaxHoldOnBattery})
}

// applyDoor decides d's lock power and writes it if it changed (for
// origin). It reports whether the relay was written.
func (l *loop) applyDoor(d *door, now time.Time, origin string) bool {
	hz := l.doorHazards(d, now)
	if policy.MomentaryEnds(d.momentaryUntil, now, hz) {
		d.momentaryUntil = time.Time{}
	}
	rex := l.stepInputs(d, now, hz, origin) // may end a momentary OPEN early
	dec := policy.Decide(policy.Inputs{
		Mode:            d.mode,
		Hazards:         hz,
		Lockdown:        l.lockdown,
		Momentary:       !d.momentaryUntil.IsZero(),
		Command:         d.command,
		Rex:             rex,
		WatchdogTripped: l.b.wd.tripped.Load(),
	})
	prevCause := d.cause
	d.cause = dec.Cause
	if d.requested && dec.Power == d.asked.power {
		return false
	}
	// The writer writes it off the loop (relays.go); the door's power and
	// its report follow what was written (collectRelays), never the wish.
	d.asked, d.requested = relayAsk{power: dec.Power, hz: hz, prevCause: prevCause, origin: origin}, true
	d.relay.request(dec.Power)
	return true
}

// relayAsk is a lock power the loop asked a door's relay writer for, and
// why: what the write's report says once it is done.
type relayAsk struct {
	power     bool
	hz        Hazards // the door's hazards then
	prevCause string  // the door's cause before that decision
	origin    string  // what caused the evaluation that asked
}

// relayReport is a relay change a writer made, to be reported.
type relayReport struct {
	d          *door
	ask        relayAsk // what the loop last asked of that writer
	wasLocked  bool
	wasWritten bool
	watchdog   bool // forced off by the watchdog, which recorded it itself
}

// reportRelays reports the relay changes of the evaluation, once written.
func (l *loop) reportRelays() {
	for _, r := range l.reports {
		d := r.d
		l.b.m.relayWrites.WithLabelValues(d.cfg.ID).Inc()
		if r.wasWritten && r.wasLocked == d.locked() {
			continue
		}
		energized := d.power
		if !r.watchdog {
			l.record(auditEvent{Kind: "relay", Door: d.cfg.ID, Energized: &energized, Cause: d.cause, Origin: r.ask.origin,
				Outcome: map[bool]string{true: "locked", false: "unlocked"}[d.locked()]})
		}
		if r.wasWritten {
			// After the state: Home Assistant's lock entity first.
			l.doorEvent(d, lockEventType(d, r.ask.hz, r.ask.prevCause))
		}
		if r.wasWritten && r.wasLocked && !d.locked() && d.cause == CauseNormal && isHazardName(r.ask.prevCause) {
			// Unlocked again by nothing anyone did just now: say so.
			l.notice(fmt.Sprintf("%s is unlocked again: the %s is over and its last command was UNLOCK", d.cfg.Name, r.ask.prevCause))
		}
	}
	clear(l.reports)
	l.reports = l.reports[:0]
}

// lockEventType names the access event for a door that just changed.
func lockEventType(d *door, hz Hazards, prevCause string) string {
	switch {
	case !d.locked() && hz.Any():
		return mqttapi.EventReleasedByHazard
	case !d.locked() && d.cause == CauseMomentary:
		return mqttapi.EventOpened
	case !d.locked():
		return mqttapi.EventUnlocked
	case isHazardName(prevCause):
		return mqttapi.EventRelocked
	default:
		return mqttapi.EventLocked
	}
}

func isHazardName(s string) bool {
	for _, h := range AllHazards() {
		if h.String() == s {
			return true
		}
	}
	return false
}

// collectRelays takes what every relay writer did since the last call;
// origin is what the loop is handling when it does.
func (l *loop) collectRelays(now time.Time, origin string) {
	for _, d := range l.b.doors {
		if st, news := d.relay.take(); news {
			l.relayResult(d, st, now, origin)
		}
	}
}

// relayResult takes one relay writer's status: a write that failed or is
// overdue makes the door JAMMED with its power unknown; a successful one
// is the door's power, reported once the evaluation is done.
func (l *loop) relayResult(d *door, st relayStatus, now time.Time, origin string) {
	id := d.cfg.ID
	if st.err != nil {
		l.setFault(d, st.err, origin)
		l.b.m.lockEnergized.WithLabelValues(id).Set(math.NaN())
		l.b.m.doorLocked.WithLabelValues(id).Set(math.NaN())
		return
	}
	if d.fault {
		l.clearFault(d, now, origin)
	}
	l.b.m.lockEnergized.WithLabelValues(id).Set(b2f(st.power))
	l.b.m.doorLocked.WithLabelValues(id).Set(b2f(d.mode.Locked(st.power)))
	if d.written && d.power == st.power {
		return
	}
	wasLocked, wasWritten := d.locked(), d.written
	d.power, d.written = st.power, true
	l.reports = append(l.reports, relayReport{d: d, ask: d.asked, wasLocked: wasLocked, wasWritten: wasWritten, watchdog: st.watchdog})
}

// onRelayNews takes the relay writers' news. While a release is being
// written, the loop only collects, and evaluates once every write is done
// or failed: an evaluation per door would take the CPU from the writers.
func (l *loop) onRelayNews() {
	if l.release != nil && time.Since(l.release.start) <= writeDeadline {
		l.collectRelays(l.now(), "relay")
		if !l.settled() {
			return
		}
	}
	l.evaluate("relay")
}

// pendingRelease is a hazard's release, until its relays are written.
type pendingRelease struct {
	start  time.Time // real time, for the release latency
	rose   Hazards
	armed  []*door
	origin string // what caused it: the drill it proves is recorded for it
}

// trackRelease follows the release of hazards that rose: once every
// relay is written (or failed), the time since start is the release
// latency, and an alarm that released every armed fail-safe door is a
// drill (afterWrites).
func (l *loop) trackRelease(rose Hazards, wrote bool, start time.Time, armed []*door, origin string) {
	switch {
	case rose.Any() && wrote && l.release == nil:
		l.release = &pendingRelease{start: start, rose: rose, armed: armed, origin: origin}
	case rose.Any() && wrote:
		l.release.rose |= rose
	case rose.Any():
		l.afterWrites(rose, false, start, armed, origin)
	}
	// Every write is done or overdue within writeDeadline; the second one
	// is a backstop (a writer that died in a panic never answers).
	if l.release != nil && (l.settled() || time.Since(l.release.start) > 2*writeDeadline) {
		r := l.release
		l.release = nil
		l.afterWrites(r.rose, true, r.start, r.armed, r.origin)
	}
}

// settled reports whether every relay reached the power last asked for,
// or failed trying.
func (l *loop) settled() bool {
	for _, d := range l.b.doors {
		if !d.settled() {
			return false
		}
	}
	return true
}

// waitRelays waits, at most within, until every relay is written or failed,
// evaluating (for origin) as their news comes: the shutdown's last writes.
func (l *loop) waitRelays(within time.Duration, origin string) {
	t := time.NewTimer(within)
	defer t.Stop()
	for !l.settled() {
		select {
		case <-l.b.relayNews:
			l.evaluate(origin)
		case <-t.C:
			l.evaluate(origin)
			return
		}
	}
}

func (l *loop) setFault(d *door, err error, origin string) {
	l.countDriverError(d)
	if !d.fault {
		l.afterIO(func() {
			l.log.Error("relay write failed: door jammed, lock power commanded off and retried", "door", d.cfg.ID, "err", err)
		})
		l.recordLogged(auditEvent{Kind: "driver", Door: d.cfg.ID, Outcome: "fault", Detail: err.Error(), Origin: origin})
	}
	d.fault, d.faultErr = true, err
}

func (l *loop) clearFault(d *door, now time.Time, origin string) {
	l.afterIO(func() { l.log.Info("relay write works again", "door", d.cfg.ID) })
	l.recordLogged(auditEvent{Kind: "driver", Door: d.cfg.ID, Outcome: "recovered", Origin: origin})
	d.fault, d.faultErr, d.faultCleared = false, nil, now
}

func (l *loop) onPower(e evPower) {
	if !l.setPower(e) {
		return
	}
	l.evaluate("power:" + e.source)
}

// setPower records a power source's reading and reports whether it changed.
func (l *loop) setPower(e evPower) bool {
	if was, known := l.powerLost[e.source]; known && was == e.lost {
		return false
	}
	l.powerLost[e.source] = e.lost
	if l.battery.mains(l.powerOut(), l.now()) {
		l.saveLater(batteryRecord, l.battery.encode())
	}
	l.powerSince = l.battery.since()
	level := slog.LevelWarn
	if !e.lost {
		level = slog.LevelInfo // mains back, or the first reading: a clear is not a warning
	}
	l.afterIO(func() {
		l.log.Log(context.Background(), level, "power source changed", "source", e.source, "lost", e.lost, "detail", e.detail)
	})
	return true
}

// shutdown turns every relay off for good and publishes the final state.
func (l *loop) shutdown(reason string) {
	l.shutting = true
	l.evaluate(reason)
	l.waitRelays(writeDeadline+50*time.Millisecond, reason)
	l.flushLater()
	l.log.Info("all relays off", "reason", reason)
}

// snapshot publishes the state for HTTP readers, built again only where
// something in it changed: most evaluations change nothing, and an idle
// bridge should not make garbage (issue 7: idle CPU). A door whose view
// still holds keeps it: the new snapshot points at the same *DoorView as
// the last one (snapshots and their views are read-only once stored, and
// shared): with 256 doors, a command to one of them builds one view and
// copies 256 pointers, not 256 views (issue 13: a command cost more the
// more doors there were).
func (l *loop) snapshot(now time.Time) {
	prev := l.b.snapshot.Load()
	reuse := prev != nil && len(prev.Doors) == len(l.b.doors) && len(l.snapDoorHz) == len(l.b.doors)
	changed := l.snapChanged[:0]
	for i, d := range l.b.doors {
		if !reuse || !l.viewHolds(prev.Doors[i], i, d, now) {
			changed = append(changed, i)
		}
	}
	l.snapChanged = changed
	if reuse && len(changed) == 0 && l.snapHz == l.effective && prev.Connected == l.linkHealthy &&
		prev.Startup == l.raw.Has(HazardStartup) && prev.Lockdown == l.lockdown && prev.Latched == l.latched {
		return
	}
	l.snapHz = l.effective
	s := &Snapshot{
		Doors:     make([]*DoorView, len(l.b.doors)),
		Hazards:   l.cache.hazardNames(l.effective),
		Connected: l.linkHealthy,
		Startup:   l.raw.Has(HazardStartup),
		Lockdown:  l.lockdown,
		Latched:   l.latched,
	}
	if reuse {
		copy(s.Doors, prev.Doors)
	} else {
		l.snapDoorHz = make([]Hazards, len(l.b.doors))
	}
	for _, i := range changed {
		d := l.b.doors[i]
		var oldE, oldL *bool
		if reuse {
			oldE, oldL = prev.Doors[i].Energized, prev.Doors[i].Locked
		}
		hz := l.doorHazards(d, now)
		l.snapDoorHz[i] = hz
		power, known := d.powerKnown()
		s.Doors[i] = &DoorView{
			ID: d.cfg.ID, Name: d.cfg.Name, FailMode: d.mode.String(),
			Energized: keepPtr(oldE, power, known), Locked: keepPtr(oldL, d.locked(), known), State: d.state(), Cause: d.cause,
			Hazards:      l.cache.hazardNames(hz),
			AlarmLatched: l.latched,
			RelockAt:     l.relockAt(d),
		}
	}
	l.b.snapshot.Store(s)
}

// viewHolds reports whether v, door i's view in the stored snapshot,
// still shows d.
func (l *loop) viewHolds(v *DoorView, i int, d *door, now time.Time) bool {
	power, known := d.powerKnown()
	relock, ok := l.relockTime(d)
	return ptrIs(v.Energized, power, known) && ptrIs(v.Locked, d.locked(), known) && v.State == d.state() && v.Cause == d.cause &&
		v.AlarmLatched == l.latched && l.snapDoorHz[i] == l.doorHazards(d, now) &&
		(v.RelockAt != nil) == ok && (!ok || v.RelockAt.Equal(relock))
}

// publishRetained publishes payload on topic, retained, unless it was the
// last payload published there on this connection. It reports whether
// payload is (now) the last one published there.
func (l *loop) publishRetained(topic, payload string) bool {
	if l.pub[topic] == payload {
		return true
	}
	if l.mq.publish(topic, payload, true) {
		l.pub[topic] = payload
		return true
	}
	return false
}

// synced reports whether this connection's first heartbeat came back: the
// broker has then delivered the retained values of every subscription.
func (l *loop) synced() bool {
	return l.mq != nil && l.connected && l.subscribed && !l.hbRecvAt.IsZero()
}

// publishState publishes every retained state that changed.
func (l *loop) publishState() {
	now := l.now()
	l.snapshot(now)
	if !l.synced() {
		return
	}
	t := l.b.topics
	for _, d := range l.b.doors {
		l.publishDoor(d, now)
		l.publishInputs(d)
	}
	l.publishRetained(t.AlarmState, onOff(l.alarmActive()))
	l.publishRetained(t.AlarmAttrs, l.alarmAttributes())
	l.publishRetained(t.AlarmLatched, onOff(l.latched))
	l.publishRetained(t.LockdownState, onOff(l.lockdown))
	l.publishRetained(t.ProblemState, onOff(l.effective.Any()))
	l.publishRetained(t.Hazards, l.cache.hazardsJSON(l.effective))
	l.publishDrill(now)
	if len(l.powerLost) > 0 {
		l.publishRetained(t.PowerState, onOff(!l.powerOut()))
	}
}

// publishDoor publishes d's retained state, attributes included, where it
// changed. A door whose published values are all what it would publish now
// costs a comparison: with 256 doors, a command to one of them no longer
// looks up and compares four topics of every other door.
func (l *loop) publishDoor(d *door, now time.Time) {
	hz := l.doorHazards(d, now)
	key := d.pubKey(hz)
	if d.published && d.pubLast == key {
		return
	}
	ok := l.publishRetained(d.topics.State, d.state())
	ok = l.publishRetained(d.topics.Cause, d.cause) && ok
	ok = l.publishRetained(d.topics.Energized, onOffUnknown(d.energized())) && ok
	ok = l.publishRetained(d.topics.Attributes, l.cache.attrsJSON(d, doorAttributes{
		FailMode: d.mode.String(), Energized: d.energized(), Locked: d.lockedKnown(), Cause: d.cause,
		Hazards: hazardList(hz), Egress: d.cfg.Egress, MechanicalEgress: d.cfg.MechanicalEgress,
		Fault: errString(d.faultErr),
	})) && ok
	// A publish that could not be queued is tried again next time.
	d.published, d.pubLast = ok, key
}

// forgetPublished forgets every retained payload published: the next
// publishState publishes them all.
func (l *loop) forgetPublished() {
	clear(l.pub)
	for _, d := range l.b.doors {
		d.published = false
	}
}

// republishState forgets what was published and publishes it all again.
func (l *loop) republishState() {
	l.forgetPublished()
	l.mq.publish(l.b.topics.Availability, mqttapi.Online, true)
	l.publishState()
}

type doorAttributes struct {
	FailMode         string     `json:"fail_mode"`
	Energized        *bool      `json:"energized"` // null: unknown, the relay is faulted
	Locked           *bool      `json:"locked"`
	Cause            string     `json:"cause"`
	Hazards          hazardList `json:"hazards"`
	Egress           bool       `json:"egress"`
	MechanicalEgress bool       `json:"mechanical_egress"`
	Fault            string     `json:"fault,omitempty"`
}

// doorEvent publishes an access event for HA's event entity (never retained).
// It goes out after the state of this event (afterIO): Home Assistant's
// lock entity hears first. The cause is the one it has now.
func (l *loop) doorEvent(d *door, typ string) {
	cause := d.cause
	l.afterIO(func() { l.publishDoorEvent(d, typ, cause) })
}

func (l *loop) publishDoorEvent(d *door, typ, cause string) {
	if l.mq == nil {
		return
	}
	b, _ := json.Marshal(map[string]string{"event_type": typ, "cause": cause})
	l.mq.publish(d.topics.Event, string(b), false)
}

// notice publishes a human-readable notice (why a reset was refused...).
func (l *loop) notice(msg string) {
	l.log.Info("notice", "text", msg)
	l.publishRetained(l.b.topics.Notice, noticePayload(msg))
}

// warnNotice is a notice about something refused or failing: logged as a
// warning, so a log filtered to warnings still shows it.
func (l *loop) warnNotice(msg string) {
	l.log.Warn("notice", "text", msg)
	l.publishRetained(l.b.topics.Notice, noticePayload(msg))
}

// noticePayload is msg cut to the notice sensor's 250 bytes, never in the
// middle of a UTF-8 character: Home Assistant drops such a payload.
func noticePayload(msg string) string {
	if len(msg) <= 250 {
		return msg
	}
	return strings.ToValidUTF8(msg[:250], "")
}

func onOff(b bool) string {
	if b {
		return mqttapi.On
	}
	return mqttapi.Off
}

// onOffUnknown is onOff, or HA's unknown for a nil (unknown) state.
func onOffUnknown(b *bool) string {
	if b == nil {
		return payloadUnknown
	}
	return onOff(*b)
}

// ptrIs reports whether p shows v (known) or nothing (unknown), as
// door.energized and door.lockedKnown would, without their allocation.
func ptrIs(p *bool, v, known bool) bool { return (p != nil) == known && (p == nil || *p == v) }

// keepPtr returns old when it shows v (known) or nothing (unknown), else
// a pointer that does.
func keepPtr(old *bool, v, known bool) *bool {
	switch {
	case ptrIs(old, v, known):
		return old
	case !known:
		return nil
	}
	return &v
}

func samePtr(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// relockAt is when unlocked door d locks again by itself, or nil: the end
// of its momentary OPEN, of relock_delay after the hazards that released
// it cleared, or of the hold after its relay recovered; the latest of them.
func (l *loop) relockAt(d *door) *time.Time {
	if at, ok := l.relockTime(d); ok {
		return &at
	}
	return nil
}

// relockTime is relockAt without the pointer: comparing it allocates nothing.
func (l *loop) relockTime(d *door) (time.Time, bool) {
	if d.locked() {
		return time.Time{}, false
	}
	var at time.Time
	later := func(t time.Time) {
		if t.After(at) {
			at = t
		}
	}
	later(d.momentaryUntil)
	delay := l.b.cfg.Watchdog.RelockDelay
	if d.mode == FailSafe && l.effective.Any() && !l.raw.Any() && !l.healthySince.IsZero() {
		later(l.healthySince.Add(delay))
	}
	if !d.faultCleared.IsZero() && d.recovering(l.now(), delay) {
		later(d.faultCleared.Add(delay))
	}
	return at, !at.IsZero()
}
