package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
)

// What the web console (package console) needs from the bridge: a full
// view built on the loop, the recent audit events, and actions that enter
// the loop exactly as the MQTT messages they stand for.

// ErrLoopBusy is returned when the control loop did not answer in time.
var ErrLoopBusy = errors.New("control loop not responding")

// ConsoleView is the state the console shows, built on the loop.
type ConsoleView struct {
	Time         time.Time      `json:"time"`
	Doors        []ConsoleDoor  `json:"doors"`
	Hazards      []string       `json:"hazards"` // what the policy sees (held for relock_delay)
	Link         string         `json:"link"`    // healthy, no_heartbeat, down, starting
	Alarms       []ConsoleAlarm `json:"alarms"`
	AlarmActive  bool           `json:"alarm_active"`
	Latched      bool           `json:"latched"`
	ResetRefusal string         `json:"reset_refusal,omitempty"` // why a reset would be refused now
	Power        []ConsolePower `json:"power"`
	Lockdown     bool           `json:"lockdown"`
	LockdownOn   string         `json:"lockdown_on_refusal,omitempty"`
	LockdownOff  string         `json:"lockdown_off_refusal,omitempty"`
	RelockIn     float64        `json:"relock_in"` // seconds until the held hazards clear; 0: none held
	DrillOverdue bool           `json:"drill_overdue"`
	LastDrill    *time.Time     `json:"last_drill,omitempty"`
	DrillTopic   string         `json:"drill_topic,omitempty"`   // "": no plain alarm entry to drill with
	DrillRefusal string         `json:"drill_refusal,omitempty"` // why a drill would be refused now
}

// ConsoleDoor is one door in the console.
type ConsoleDoor struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	FailMode string   `json:"fail_mode"`
	State    string   `json:"state"`
	Cause    string   `json:"cause"`
	Hazards  []string `json:"hazards"`
	Power    string   `json:"power"`   // on, off, unknown (JAMMED: the relay did not take the write)
	Contact  string   `json:"contact"` // open, closed, unknown; "" without a contact
	Fault    string   `json:"fault,omitempty"`
	HasCode  bool     `json:"has_code"`
	// LockedOut is how many seconds codes are still refused for.
	LockedOut float64 `json:"locked_out,omitempty"`
	// Refusals holds, per request (LOCK, UNLOCK, OPEN), why a hazard
	// refuses it now; a request absent is allowed.
	Refusals  map[string]string `json:"refusals,omitempty"`
	LastEvent *audit.Event      `json:"last_event,omitempty"`
}

// ConsoleAlarm is one alarm entry and what its sources said.
type ConsoleAlarm struct {
	Topic   string            `json:"topic"`
	Active  bool              `json:"active"`
	Sources map[string]string `json:"sources"` // concrete topic -> alarm, clear, unknown; at most consoleSources
	// SourcesMore is how many sources Sources leaves out (those in alarm
	// and unknown are shown first); Counts counts every source by value.
	SourcesMore int            `json:"sources_more,omitempty"`
	Counts      map[string]int `json:"counts"`
	Expected    int            `json:"expected"`
	Supervision string         `json:"supervision,omitempty"` // why it cannot be trusted now
	// Availability is what each availability topic last said: online or
	// offline; at most consoleSources (offline first), AvailabilityMore
	// left out.
	Availability     map[string]string `json:"availability,omitempty"`
	AvailabilityMore int               `json:"availability_more,omitempty"`
	Why              string            `json:"why,omitempty"` // why it is active
}

// ConsolePower is one power source.
type ConsolePower struct {
	Name  string `json:"name"`
	State string `json:"state"` // ok, lost, unknown
}

// onLoop runs f on the loop and waits for it, at most until ctx ends.
//
// A caller that gives up before the loop takes f abandons it: the loop
// then skips it, so f never writes what its caller no longer reads (a data
// race) nor does what the caller was told failed (a drill's publish). Once
// the loop has taken f, the caller waits for it to finish (f is short, and
// a stuck loop trips the watchdog) so its results are whole.
func (b *Bridge) onLoop(ctx context.Context, f func(*loop)) error {
	const queued, taken, abandoned = 0, 1, 2
	var state atomic.Int32
	done := make(chan struct{})
	run := evFunc(func(l *loop) {
		if state.CompareAndSwap(queued, taken) {
			f(l)
			close(done)
		}
	})
	select {
	case b.events <- run:
	case <-ctx.Done():
		return ErrLoopBusy
	case <-b.stopped:
		return ErrLoopBusy
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	case <-b.stopped:
	}
	if state.CompareAndSwap(queued, abandoned) {
		return ErrLoopBusy
	}
	select {
	case <-done:
		return nil
	case <-b.stopped:
		return ErrLoopBusy
	}
}

// ConsoleView builds the console's view on the loop.
func (b *Bridge) ConsoleView(ctx context.Context) (*ConsoleView, error) {
	var v *ConsoleView
	err := b.onLoop(ctx, func(l *loop) { v = l.consoleView() })
	if err != nil {
		return nil, err
	}
	for i := range v.Doors {
		v.Doors[i].LastEvent = b.audit.recent.lastOf(v.Doors[i].ID)
	}
	return v, nil
}

func (l *loop) consoleView() *ConsoleView {
	now := l.now()
	v := &ConsoleView{
		Time: time.Now(), Hazards: l.effective.Names(), Link: l.linkState(now),
		AlarmActive: l.alarmActive(), Latched: l.latched, Lockdown: l.lockdown,
		DrillOverdue: l.drillOverdue(now),
	}
	if v.Hazards == nil {
		v.Hazards = []string{}
	}
	if !l.drill.last.IsZero() {
		t := l.drill.last
		v.LastDrill = &t
	}
	if a, ok := DrillAlarm(l.b.cfg); ok {
		v.DrillTopic = a.Topic
		v.DrillRefusal = l.drillRefusal()
	}
	if !l.raw.Any() && l.effective.Any() && !l.healthySince.IsZero() {
		v.RelockIn = math.Ceil(max(0, (l.b.cfg.Watchdog.RelockDelay - now.Sub(l.healthySince)).Seconds()))
	}
	var active []string
	for i := range l.alarms {
		v.Alarms = append(v.Alarms, l.consoleAlarm(&l.alarms[i], now))
		if l.alarms[i].active() {
			active = append(active, l.alarms[i].describe())
		}
	}
	if len(active) > 0 {
		v.ResetRefusal = "alarm still active (" + strings.Join(active, ", ") + ")" // as onReset says it
	}
	for _, name := range slices.Sorted(maps.Keys(l.powerLost)) {
		v.Power = append(v.Power, ConsolePower{Name: name, State: map[bool]string{true: "lost", false: "ok"}[l.powerLost[name]]})
	}
	for _, p := range l.mqttPower {
		if _, seen := l.powerLost[p.cfg.Name]; !seen {
			v.Power = append(v.Power, ConsolePower{Name: p.cfg.Name, State: "unknown"})
		}
	}
	for _, d := range l.b.doors {
		v.Doors = append(v.Doors, l.consoleDoor(d, now))
	}
	for _, req := range []Request{RequestLockdownOn, RequestLockdownOff} {
		for _, d := range l.b.doors {
			if r := Refusal(d.mode, l.doorHazards(d, now), req); r != "" {
				r = "door " + d.cfg.ID + ": " + r
				if req == RequestLockdownOn {
					v.LockdownOn = r
				} else {
					v.LockdownOff = r
				}
				break
			}
		}
	}
	return v
}

func (l *loop) linkState(now time.Time) string {
	switch {
	case l.linkOK(now):
		return "healthy"
	case !l.everLinked:
		return "starting"
	case l.connected:
		return "no_heartbeat"
	}
	return "down"
}

// consoleSources bounds the sources and availability topics an alarm entry
// lists in the view: a wildcard may have thousands (max_sources), and the
// view goes to every open page several times a second.
const consoleSources = 50

func (l *loop) consoleAlarm(a *alarmSource, now time.Time) ConsoleAlarm {
	c := ConsoleAlarm{Topic: a.cfg.Topic, Active: a.active(), Sources: map[string]string{}, Counts: map[string]int{},
		Expected: a.cfg.MinSources(), Supervision: a.supervision(now)}
	values := map[string]string{}
	for t, val := range a.values {
		values[t] = val.String()
		c.Counts[val.String()]++
	}
	c.Sources, c.SourcesMore = firstOf(values, func(v string) bool { return v != "clear" })
	if len(a.offline) > 0 {
		avail := map[string]string{}
		for t, off := range a.offline {
			avail[t] = map[bool]string{true: "offline", false: "online"}[off]
		}
		c.Availability, c.AvailabilityMore = firstOf(avail, func(v string) bool { return v == "offline" })
	}
	if c.Active {
		c.Why = a.describe()
	}
	return c
}

// firstOf keeps at most consoleSources entries of m, those whose value is
// urgent first, then by key; it returns them and how many it left out.
func firstOf(m map[string]string, urgent func(string) bool) (map[string]string, int) {
	if len(m) <= consoleSources {
		return m, 0
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if ua, ub := urgent(m[a]), urgent(m[b]); ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	out := map[string]string{}
	for _, k := range keys[:consoleSources] {
		out[k] = m[k]
	}
	return out, len(m) - consoleSources
}

func (l *loop) consoleDoor(d *door, now time.Time) ConsoleDoor {
	hz := l.doorHazards(d, now)
	c := ConsoleDoor{
		ID: d.cfg.ID, Name: d.cfg.Name, FailMode: d.mode.String(), State: d.state(), Cause: d.cause,
		Hazards: hz.Names(), Power: onOff(d.power), Fault: errString(d.faultErr),
		HasCode: l.b.cfg.EffectiveCodeHash(d.cfg) != "",
	}
	if c.Hazards == nil {
		c.Hazards = []string{}
	}
	c.Power = strings.ToLower(c.Power)
	if d.fault {
		c.Power = "unknown"
	}
	if d.io != nil && d.io.contact != nil {
		switch {
		case !d.io.out.ContactKnown:
			c.Contact = "unknown"
		case d.io.out.Open:
			c.Contact = "open"
		default:
			c.Contact = "closed"
		}
	}
	if g := d.guard; g != nil && now.Before(g.until) {
		c.LockedOut = math.Ceil(g.until.Sub(now).Seconds())
	}
	for _, req := range []Request{RequestLock, RequestUnlock, RequestOpen} {
		if r := Refusal(d.mode, hz, req); r != "" {
			if c.Refusals == nil {
				c.Refusals = map[string]string{}
			}
			c.Refusals[req.String()] = r
		}
	}
	return c
}

// DrillAlarm is the alarm entry a drill publishes to, from the console and
// from `doorbridge alarm on|off`: the first with a plain topic (no
// wildcard) and plain payloads (not value_json), not an entry fed by
// devices.
func DrillAlarm(cfg *config.Config) (config.Alarm, bool) {
	for _, a := range cfg.Alarms {
		if a.ValueJSON == "" && !strings.Contains(a.Topic, "+") && !strings.Contains(a.Topic, "#") {
			return a, true
		}
	}
	return config.Alarm{}, false
}

// Action is something the console asks for. Kind is door (Request LOCK,
// UNLOCK or OPEN, with Code where the door has one), reset, lockdown
// (Request ON or OFF) or drill (Request ON or OFF: the alarm topic's
// payload_on or payload_off).
type Action struct {
	Kind    string
	Door    string
	Request string
	Code    string
	// Origin is where it came from, for the audit record
	// (console:<address>).
	Origin string
}

// Outcome is what became of an Action.
type Outcome struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// Act hands the loop the very message the MQTT path would get for a (door
// command, reset, lockdown), so every check, refusal and lockout count is
// the MQTT path's own, and reads the outcome back from the audit events
// the loop recorded. A drill is published on the alarm topic through the
// bridge's MQTT link, as `doorbridge alarm on` does, and releases through
// the alarm path.
func (b *Bridge) Act(ctx context.Context, a Action) (Outcome, error) {
	t := b.topics
	var topic, payload string
	switch a.Kind {
	case "door":
		d := b.byID[a.Door]
		if d == nil {
			return Outcome{Message: "unknown door " + a.Door}, nil
		}
		topic, payload = d.topics.Set, a.Request
		if a.Code != "" {
			p, _ := json.Marshal(map[string]string{"action": a.Request, "code": a.Code})
			payload = string(p)
		}
	case "reset":
		topic, payload = t.AlarmReset, "RESET"
	case "lockdown":
		topic, payload = t.LockdownSet, a.Request
	case "drill":
		if a.Request != "ON" {
			// The drill's OFF would go on the real alarm's topic: the
			// console cannot tell a drill's ON from a fire's there, and an
			// OFF over a real alarm would let a reset relock the doors.
			return Outcome{Message: "a drill is ended where alarms are cleared (doorbridge alarm off, as a user the broker lets publish alarms), never from the console: it cannot tell the drill's ON from a real alarm on the same topic"}, nil
		}
		return b.drill(ctx, a)
	default:
		return Outcome{Message: "unknown action " + a.Kind}, nil
	}
	// The loop handles the message as it would one from MQTT. The records
	// of earlier events are all out by then (flushLater runs after each
	// event), so those after seq are this message's, or later ones.
	var after uint64
	if err := b.onLoop(ctx, func(l *loop) {
		// Every safety message queued before this action goes first, as
		// for a command from MQTT (inbound.go).
		for n := len(l.b.in.safety); n > 0; n-- {
			l.onQueued(<-l.b.in.safety)
		}
		l.recordConsole(a, "requested") // queued before, so numbered before, the records of its outcome
		after = b.audit.seq.Load()
		l.handle(evMessage{topic: topic, payload: []byte(payload)})
	}); err != nil {
		return Outcome{}, err
	}
	// Its records are flushed after it: once this runs they are in (a
	// code is checked off the loop, and its outcome comes later).
	var latched, checking, summarized bool
	var resetWhy string
	if err := b.onLoop(ctx, func(l *loop) {
		latched = l.latched
		resetWhy = l.consoleView().ResetRefusal
		label := "lockdown"
		if d := b.byID[a.Door]; d != nil {
			checking = d.guard != nil && d.guard.busy
			label = l.doorLabel(d.cfg.ID)
		}
		w := l.rejects.windows[label]
		summarized = w != nil && w.quiet > 0
	}); err != nil {
		return Outcome{}, err
	}
	match := func(e audit.Event) bool { return consoleMatch(a, topic, e) }
	e, ok := b.audit.recent.since(after, match)
	if !ok && checking {
		e, ok = b.audit.recent.wait(ctx, after, match)
	}
	switch {
	case ok:
		return outcomeOf(a, e), nil
	case a.Kind == "reset" && !latched:
		return Outcome{OK: true, Message: "nothing was latched"}, nil
	case a.Kind == "reset" && resetWhy != "":
		// Repeated refusals are not recorded one by one (resetRefusalReported).
		return Outcome{Message: "reset refused: " + resetWhy}, nil
	case summarized:
		// Past a burst a minute, rejections are counted for a summary
		// instead of recorded one by one (rejects.go).
		return Outcome{Message: "refused: too many refused commands this minute, their reasons are summarized in the events"}, nil
	}
	return Outcome{}, ErrLoopBusy
}

// consoleMatch reports whether e is the outcome of a, sent on topic.
func consoleMatch(a Action, topic string, e audit.Event) bool {
	switch a.Kind {
	case "door", "lockdown":
		door := a.Door
		if a.Kind == "lockdown" {
			door = "lockdown"
		}
		return e.Kind == "command" && e.Door == door && e.Origin == "mqtt:"+topic
	case "reset":
		return e.Kind == "reset" || e.Kind == "latch" && e.Outcome == "OFF"
	}
	return false
}

func outcomeOf(a Action, e audit.Event) Outcome {
	switch {
	case e.Outcome == "rejected" || e.Outcome == "refused":
		return Outcome{Message: e.Detail}
	case a.Kind == "reset":
		return Outcome{OK: true, Message: "fire release reset: doors relock after relock_delay"}
	case a.Kind == "lockdown":
		return Outcome{OK: true, Message: "lockdown " + e.Detail}
	}
	return Outcome{OK: true, Message: e.Detail + " accepted"}
}

// recordConsole records that the console asked for a (the MQTT path's
// records of it name the topic it entered by): door is the door's id, or
// the kind (reset, lockdown, drill); detail the request.
func (l *loop) recordConsole(a Action, outcome string) {
	door := a.Door
	if door == "" {
		door = a.Kind
	}
	l.record(auditEvent{Kind: "console", Door: door, Outcome: outcome, Detail: a.Request, Origin: a.Origin})
}

// drillRefusal says why a drill cannot start now, or "".
func (l *loop) drillRefusal() string {
	switch {
	case l.lockdown:
		return "refused during lockdown: a drill releases every fail-safe door; end the lockdown first"
	case !l.linkOK(l.now()):
		return "the broker link is down: the drill alarm cannot be published"
	}
	return ""
}

// drill publishes the drill alarm entry's payload_on, retained, through
// the bridge's MQTT link, and answers once the bridge has heard it back
// and its alarm path has acted on it.
func (b *Bridge) drill(ctx context.Context, a Action) (Outcome, error) {
	alarm, ok := DrillAlarm(b.cfg)
	if !ok {
		return Outcome{Message: "no alarm entry has a plain topic with payload_on/payload_off to drill with"}, nil
	}
	var out Outcome
	err := b.onLoop(ctx, func(l *loop) {
		if why := l.drillRefusal(); why != "" {
			out.Message = "drill " + why
			l.recordConsole(a, "refused")
			return
		}
		if !l.mq.publish(alarm.Topic, alarm.PayloadOn, true) {
			out.Message = "the MQTT publish queue is full; try again"
			l.recordConsole(a, "refused")
			return
		}
		out.OK = true
		l.recordConsole(a, "requested")
		l.afterIO(func() {
			l.log.Warn("drill alarm published from the web console", "topic", alarm.Topic, "payload", alarm.PayloadOn, "origin", a.Origin)
		})
	})
	if err != nil || !out.OK {
		return out, err
	}
	return b.drillEcho(ctx, alarm)
}

// drillEcho waits until the loop sees the drill's alarm entry active: the
// broker passed the alarm back and the alarm path has released the doors.
func (b *Bridge) drillEcho(ctx context.Context, alarm config.Alarm) (Outcome, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		active, err := b.alarmActive(ctx, alarm.Topic)
		if active {
			return Outcome{OK: true, Message: "drill started: the bridge heard " + alarm.PayloadOn + " on " + alarm.Topic +
				" back and released every fail-safe door"}, nil
		}
		if err != nil {
			break
		}
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
		}
		break
	}
	return Outcome{Message: "published " + alarm.PayloadOn + " to " + alarm.Topic +
		", but the bridge has not heard it back yet: check that the broker lets the bridge read and write it"}, nil
}

// alarmActive reports whether the loop sees the alarm entry of topic active.
func (b *Bridge) alarmActive(ctx context.Context, topic string) (bool, error) {
	var active bool
	err := b.onLoop(ctx, func(l *loop) {
		for i := range l.alarms {
			active = active || l.alarms[i].cfg.Topic == topic && l.alarms[i].active()
		}
	})
	return active, err
}

// recentLog keeps the last audit events in memory for the console.
type recentLog struct {
	mu      sync.Mutex
	events  []audit.Event
	changed chan struct{} // closed on each add
}

const recentMax = 500

func (r *recentLog) add(e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	if len(r.events) >= 2*recentMax { // trimmed in halves: a copy per recentMax events, not per event
		r.events = slices.Delete(r.events, 0, recentMax)
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// since returns the first event after sequence number seq that matches.
func (r *recentLog) since(seq uint64, match func(audit.Event) bool) (audit.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Seq > seq && match(e) {
			return e, true
		}
	}
	return audit.Event{}, false
}

// wait is since, waiting for the event until ctx ends.
func (r *recentLog) wait(ctx context.Context, seq uint64, match func(audit.Event) bool) (audit.Event, bool) {
	for {
		if e, ok := r.since(seq, match); ok {
			return e, true
		}
		r.mu.Lock()
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		if e, ok := r.since(seq, match); ok {
			return e, true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return audit.Event{}, false
		}
	}
}

func (r *recentLog) lastOf(door string) *audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Door == door {
			e := r.events[i]
			return &e
		}
	}
	return nil
}

// RecentEvents returns up to n of the latest audit events, newest first,
// of door only when door is not "": those of this run (kept in memory)
// after those of earlier runs in audit.file, when it is set.
func (b *Bridge) RecentEvents(door string, n int) []audit.Event {
	all := b.earlierEvents()
	var last uint64
	if len(all) > 0 {
		last = all[len(all)-1].Seq
	}
	b.audit.recent.mu.Lock()
	for _, e := range b.audit.recent.events {
		if e.Seq > last {
			all = append(all, e)
		}
	}
	b.audit.recent.mu.Unlock()
	out := []audit.Event{}
	for i := len(all) - 1; i >= 0 && len(out) < n; i-- {
		if door == "" || all[i].Door == door {
			out = append(out, all[i])
		}
	}
	return out
}

// earlierEvents reads the last events of audit.file once: a page asks for
// the events on every change, and the file may hold megabytes. Those the
// file gains later are in memory (recentLog).
func (b *Bridge) earlierEvents() []audit.Event {
	b.audit.earlierOnce.Do(func() {
		if b.cfg.Audit.File == "" {
			return
		}
		var evs []audit.Event
		audit.ReadAll(b.cfg.Audit.File, func(_ string, e audit.Event) {
			evs = append(evs, e)
			if len(evs) > 2*recentMax {
				evs = slices.Delete(evs, 0, recentMax)
			}
		})
		if len(evs) > recentMax {
			evs = evs[len(evs)-recentMax:]
		}
		b.audit.earlier = evs
	})
	return slices.Clone(b.audit.earlier)
}

// Doors lists the configured door ids.
func (b *Bridge) Doors() []string {
	ids := make([]string, len(b.doors))
	for i, d := range b.doors {
		ids[i] = d.cfg.ID
	}
	return ids
}

// AuditSeq is the sequence number of the latest audit event.
func (b *Bridge) AuditSeq() uint64 { return b.audit.seq.Load() }
