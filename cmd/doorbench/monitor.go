package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// monitor watches the bridge from outside, independently of what drives
// it: every MQTT message (subscribed to "#" straight on the broker), every
// version of the relay state file, /healthz and /metrics. It judges the
// relays against the truth the soak recorded.
type monitor struct {
	s *soak

	mu        sync.Mutex
	state     map[string]string // door id -> last state payload
	energized map[string]string // door id -> last energized payload
	avail     string            // last availability payload
	lastDoor  time.Time         // last door message (state, energized, cause, attributes)
	lastRelay time.Time         // last new version of the state file
	prev      relayVersion      // last version seen
	checks    int               // relay checks done

	health healthWatch
}

func newMonitor(s *soak) *monitor {
	return &monitor{s: s, state: map[string]string{}, energized: map[string]string{}}
}

func (m *monitor) isDoor(id string) bool {
	for i := range m.s.cfg.Doors {
		if doorID(i) == id {
			return true
		}
	}
	return false
}

// forget drops what the monitor knew of the published state: a fresh broker
// has none of it.
func (m *monitor) forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.state)
	clear(m.energized)
	m.avail = ""
}

// connected reports whether the bridge is visibly connected: online on this
// broker and every door's state published.
func (m *monitor) connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.avail == "online" && len(m.state) == m.s.cfg.Doors && len(m.energized) == m.s.cfg.Doors
}

// onMsg records a message (on the MQTT client's reader goroutine).
func (m *monitor) onMsg(msg msg) {
	prefix := m.s.cfg.prefix() + "/"
	rest, ok := strings.CutPrefix(msg.Topic, prefix)
	if !ok {
		return
	}
	if rest == "heartbeat" {
		// "<connection generation> <send time in Unix ns>", or signed:
		// "<generation> <sequence> <send time in Unix ns> <signature>": the
		// bridge is subscribed on a live link since then.
		f := strings.Fields(string(msg.Payload))
		ns := ""
		switch len(f) {
		case 2:
			ns = f[1]
		case 4:
			ns = f[2]
		}
		if n, err := strconv.ParseInt(ns, 10, 64); err == nil {
			m.s.truth.heartbeat(time.Unix(0, n))
		}
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rest == "availability" {
		m.avail = string(msg.Payload)
		return
	}
	door, leaf, ok := strings.Cut(rest, "/")
	if !ok || !m.isDoor(door) {
		return
	}
	switch leaf {
	case "state":
		m.state[door] = string(msg.Payload)
	case "energized":
		m.energized[door] = string(msg.Payload)
	case "cause", "attributes":
	default:
		return
	}
	m.lastDoor = msg.At
}

// releaseBudgets: how long a hazard may last before every lock must be
// unpowered (safety.md's timing budget: detection, then release within 1 s).
func releaseBudgets() budgets {
	return budgets{
		"alarm":  time.Second,                 // R3: released within 1 s of the message
		"power":  time.Second,                 // R8: mains lost, released within 1 s
		"broker": time.Second,                 // R6: socket error, released within 1 s
		"silent": soakHBTimeout + time.Second, // R6: detected within heartbeat_timeout, released within 1 s
		"bridge": time.Second,                 // R10: SIGTERM turns every relay off
	}
}

// turnOnBudgets: how long after a hazard began a fail-secure lock being
// powered means the bridge powered it knowing of the hazard. (A command
// handled just before the alarm arrived may power a strike a moment after
// the alarm was published.)
func turnOnBudgets() budgets {
	return budgets{
		"alarm":  500 * time.Millisecond,
		"power":  500 * time.Millisecond,
		"broker": 500 * time.Millisecond,
		"silent": soakHBTimeout + 500*time.Millisecond,
		"bridge": 500 * time.Millisecond,
	}
}

// checkLevels applies invariant 1: while a hazard has lasted longer than its
// budget, no lock is powered (R1: every hazard turns lock power off on every
// door, fail-safe and fail-secure). levels were read at some moment after t.
func (m *monitor) checkLevels(levels map[string]bool, t time.Time, how string) {
	m.mu.Lock()
	m.checks++
	m.mu.Unlock()
	var on []string
	for ch, v := range levels {
		// A relay whose writes the soak breaks may be stuck powered: the
		// bridge must show it JAMMED (invariant 3), and release the others.
		if v && !m.s.truth.faulted(ch, t) {
			on = append(on, ch)
		}
	}
	if len(on) == 0 {
		return
	}
	if m.s.truth.overdue(t, releaseBudgets()) == nil {
		return
	}
	// Judged again a little later: the heartbeat that shows the link back
	// (and ends a link hazard) may still be on its way to the monitor.
	m.s.later(func() {
		if p := m.s.truth.overdue(t, releaseBudgets()); p != nil {
			m.s.fail("invariant 1: relays %v powered (%s) %v after %s (%s hazard; budget %v)",
				on, how, t.Sub(p.start).Round(time.Millisecond), p.why, p.kind, releaseBudgets()[p.kind])
		}
	})
}

// onVersion runs on the watcher goroutine for every new state file version.
func (m *monitor) onVersion(v relayVersion) {
	m.mu.Lock()
	prev := m.prev
	m.prev = v
	m.lastRelay = v.At
	m.mu.Unlock()
	m.checkLevels(v.Levels, v.Start, "state file changed")
	if prev.Seq == 0 {
		return
	}
	// Invariant 2: a fail-secure lock newly powered while a hazard is known.
	// It was off when the previous version was read, so it went on after
	// prev.Start.
	for _, ch := range m.s.cfg.channels(false) {
		if v.Levels[ch] && !prev.Levels[ch] && !m.s.truth.faulted(ch, prev.Start) && m.s.truth.overdue(prev.Start, turnOnBudgets()) != nil {
			m.s.later(func() {
				if p := m.s.truth.overdue(prev.Start, turnOnBudgets()); p != nil && m.s.truth.stillActive(p, v.At) {
					m.s.fail("invariant 2: fail-secure relay %s turned on while a %s hazard was known (%s, %v before)",
						ch, p.kind, p.why, prev.Start.Sub(p.start).Round(time.Millisecond))
				}
			})
		}
	}
}

// pollRelays re-reads the state file every few milliseconds: a bridge that
// does not react leaves the file unchanged, and only a fresh read shows a
// relay still powered past its budget.
func (m *monitor) pollRelays(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			levels, start, _, err := readRelays(m.s.cfg.StateFile)
			if err != nil {
				continue // not written yet
			}
			m.checkLevels(levels, start, "state file re-read")
		}
	}
}

// quiet reports how long since the last door message and relay change.
func (m *monitor) quietFor() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.lastDoor
	if m.lastRelay.After(last) {
		last = m.lastRelay
	}
	return time.Since(last)
}

// published returns a copy of the last state and energized payloads.
func (m *monitor) published() (state, energized map[string]string, avail string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	state, energized = map[string]string{}, map[string]string{}
	for k, v := range m.state {
		state[k] = v
	}
	for k, v := range m.energized {
		energized[k] = v
	}
	return state, energized, m.avail
}

// payloadUnknown is Home Assistant's "unknown" state, which the bridge
// publishes for a lock power it does not know.
const payloadUnknown = "None"

// mismatches applies invariant 3: the published state of every door is what
// its relay does. A door whose relay writes the soak breaks may instead be
// JAMMED, its lock power unknown, never a level its relay does not have.
func (m *monitor) mismatches(levels map[string]bool) []string {
	state, energized, _ := m.published()
	var bad []string
	now := time.Now()
	for i := range m.s.cfg.Doors {
		id, on := doorID(i), levels[doorChannel(i)]
		locked := on == doorFailSafe(i) // maglock: powered = locked; strike: powered = unlocked
		want := map[bool]string{true: "ON", false: "OFF"}[on]
		st := state[id]
		if st == "JAMMED" && m.s.truth.faulted(doorChannel(i), now) {
			if e := energized[id]; e != payloadUnknown && e != want {
				bad = append(bad, fmt.Sprintf("%s JAMMED, relay %v: energized %q (a level it does not have)", id, on, e))
			}
			continue
		}
		stOK := (locked && st == "LOCKED") || (!locked && (st == "UNLOCKED" || st == "OPEN"))
		if !stOK || energized[id] != want {
			bad = append(bad, fmt.Sprintf("%s relay %v: state %q energized %q", id, on, st, energized[id]))
		}
	}
	return bad
}

// ---- /healthz ----

// healthWatch polls /healthz (invariant 4): it must answer 200 except while
// the bridge is restarted on purpose, and a new process must answer within
// startGrace of its exec.
type healthWatch struct {
	mu         sync.Mutex
	addr       string
	restarting bool      // between SIGTERM and the new process's first 200
	startedAt  time.Time // exec of the current process
	okSince    bool      // the current process answered 200 once
	polls, oks int
}

const startGrace = 5 * time.Second

func (m *monitor) restarting() {
	m.health.mu.Lock()
	m.health.restarting = true
	m.health.mu.Unlock()
}

func (m *monitor) started(t time.Time) {
	m.health.mu.Lock()
	m.health.startedAt, m.health.okSince, m.health.restarting = t, false, false
	m.health.mu.Unlock()
}

// answered reports whether the current process has answered /healthz.
func (m *monitor) answered() bool {
	m.health.mu.Lock()
	defer m.health.mu.Unlock()
	return m.health.okSince
}

func (m *monitor) pollHealth(ctx context.Context, addr string) {
	client := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h := &m.health
		h.mu.Lock()
		restarting, startedAt := h.restarting, h.startedAt
		h.mu.Unlock()
		if restarting || startedAt.IsZero() {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/healthz", nil)
		resp, err := client.Do(req)
		status := 0
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		h.polls++
		if h.restarting || h.startedAt != startedAt {
			h.mu.Unlock()
			continue // a restart began meanwhile
		}
		if status == http.StatusOK {
			h.oks++
			h.okSince = true
			h.mu.Unlock()
			continue
		}
		ok, since := h.okSince, time.Since(startedAt)
		h.mu.Unlock()
		if ok || since > startGrace {
			m.s.fail("invariant 4: /healthz answered %d (%v) %v after the bridge started", status, err, since.Round(time.Millisecond))
		}
	}
}

// ---- /metrics ----

// procMetrics are go_goroutines and process_resident_memory_bytes.
type procMetrics struct {
	goroutines float64
	rssMB      float64
}

func scrapeMetrics(addr string) (procMetrics, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return procMetrics{}, err
	}
	defer resp.Body.Close()
	var pm procMetrics
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_goroutines":
			pm.goroutines, err = strconv.ParseFloat(val, 64)
			found++
		case "process_resident_memory_bytes":
			var b float64
			b, err = strconv.ParseFloat(val, 64)
			pm.rssMB = b / (1 << 20)
			found++
		}
		if err != nil {
			return pm, err
		}
	}
	if found != 2 {
		return pm, fmt.Errorf("/metrics lacks go_goroutines or process_resident_memory_bytes")
	}
	return pm, sc.Err()
}
