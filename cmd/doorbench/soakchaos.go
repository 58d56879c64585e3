package main

// The soak's actions against disorder (issue 11): bursts of commands and
// alarm values sent back to back, judged by the last value (R21); relay
// faults on random channels through the sim driver's faults_file (R22:
// every other door still releases within budget, the faulted one shows
// JAMMED or its true state, never a false one); and a bridge restart while
// the fire release is latched (R23: the latch holds without a RESET).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// apiState is the part of the bridge's /api/v1/state the soak reads.
type apiState struct {
	Hazards   []string `json:"hazards"`
	Latched   bool     `json:"alarm_latched"`
	Connected bool     `json:"connected"`
	Startup   bool     `json:"startup"`
	Doors     []struct {
		ID      string   `json:"id"`
		Hazards []string `json:"hazards"`
	} `json:"doors"`
}

func (s *soak) apiState() (apiState, error) {
	var st apiState
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + s.cfg.HTTP + "/api/v1/state")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// calm reports whether the soak caused no hazard that is active or held,
// and the bridge, asked, has none either: a command now is accepted.
func (s *soak) calm() bool {
	if !s.truth.linkUp() || !s.mon.connected() || time.Since(s.lastOpen) < 2500*time.Millisecond {
		return false
	}
	if alarm, power := s.truth.values(); alarm != "OFF" || power != "ON" {
		return false
	}
	st, err := s.apiState()
	if err != nil || len(st.Hazards) > 0 || st.Latched {
		return false
	}
	for _, d := range st.Doors {
		if len(d.Hazards) > 0 {
			return false
		}
	}
	return true
}

// becomeCalm clears the hazards the soak controls if need be and waits, at
// most 3 s, for a calm moment.
func (s *soak) becomeCalm() bool {
	if s.calm() {
		return true
	}
	if !s.truth.linkUp() {
		return false
	}
	s.record("calm for a burst: alarm OFF, RESET, power ON")
	if err := errors.Join(s.alarm("OFF"), s.power("ON")); err != nil {
		return false
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		s.truth.resetSent(time.Now())
		if s.publish(s.cfg.prefix()+"/alarm/reset", "RESET", 1, false) != nil {
			return false
		}
		select {
		case <-s.failed:
			return false
		case <-time.After(250 * time.Millisecond):
		}
		if s.calm() {
			return true
		}
	}
	return false
}

// burst sends a door 2-5 LOCK/UNLOCK commands back to back, QoS 1, from one
// client, and checks once quiet that the last one won (R21: the broker
// keeps one publisher's order, and so must the bridge).
func (s *soak) burst() error {
	if !s.becomeCalm() {
		s.record("command burst skipped: no calm moment")
		return nil
	}
	i := s.rnd.IntN(soakDoorCount)
	ch := doorChannel(i)
	if _, faulted := s.truth.faultedNow()[ch]; faulted {
		s.record("command burst skipped: %s is faulted", doorID(i))
		return nil
	}
	words := make([]string, 2+s.rnd.IntN(5))
	for k := range words {
		words[k] = []string{"LOCK", "UNLOCK"}[s.rnd.IntN(2)]
	}
	// A marker after the burst, from the same client: another door told to
	// change. Once it has, a bridge that keeps the broker's order has
	// handled the whole burst.
	j := (i + 1 + s.rnd.IntN(soakDoorCount-1)) % soakDoorCount
	if _, faulted := s.truth.faultedNow()[doorChannel(j)]; faulted {
		s.record("command burst skipped: marker door %s is faulted", doorID(j))
		return nil
	}
	before := s.w.current()
	mj := !before.Levels[doorChannel(j)]
	marker := map[bool]string{true: "UNLOCK", false: "LOCK"}[before.Levels[doorChannel(j)] == doorFailSafe(j)]
	s.record("command burst %s: %s; then %s %s", doorID(i), strings.Join(words, " "), doorID(j), marker)
	if err := s.publish(s.cfg.prefix()+"/lockdown/set", "OFF", 1, false); err != nil {
		return err
	}
	for _, w := range words {
		if err := s.publish(s.cfg.setTopic(i), w, 1, false); err != nil {
			return err
		}
	}
	if err := s.publish(s.cfg.setTopic(j), marker, 1, false); err != nil {
		return err
	}
	if _, err := s.w.waitFor(before.Seq, func(m map[string]bool) bool { return m[doorChannel(j)] == mj }, 5*time.Second); err != nil {
		s.record("command burst not judged: the marker door %s did not change within 5 s", doorID(j))
		return nil
	}
	last := words[len(words)-1]
	want := (last == "LOCK") == doorFailSafe(i) // maglock: LOCK powers it; strike: UNLOCK does
	for attempt := 0; attempt < 2; attempt++ {
		if !s.waitQuiet(6 * time.Second) {
			return nil // not judged: never quiet, or the link went down
		}
		levels, _, _, err := readRelays(s.cfg.StateFile)
		if err != nil {
			return err
		}
		if levels[ch] == want {
			s.bursts++
			return nil
		}
	}
	// A hazard since (the bridge's link lost under load, say) takes power
	// off whatever the last command was: judged only in a calm moment.
	if !s.calm() {
		s.record("command burst not judged: no longer calm")
		return nil
	}
	s.fail("R21: after the commands %s to %s, sent back to back from one client in a calm moment (and handled: the %s to %s sent after them was), its relay has lock power %v: the last one (%s) must win",
		strings.Join(words, " "), doorID(i), marker, doorID(j), !want, last)
	return nil
}

// alarmBurst sends 2-4 alarm values back to back, retained, from one
// client; the truth follows them in order, so the monitor judges the last.
func (s *soak) alarmBurst() error {
	n := 2 + s.rnd.IntN(3)
	vals := make([]string, n)
	for k := range vals {
		vals[k] = []string{"ON", "OFF"}[s.rnd.IntN(2)]
	}
	s.record("alarm burst: %s", strings.Join(vals, " "))
	for _, v := range vals {
		if err := s.alarm(v); err != nil {
			return err
		}
	}
	return nil
}

// latchedRestart latches the fire release (an alarm ON, then OFF once the
// bridge says it latched), then restarts the bridge: nothing but a RESET
// may relock the doors (R4, R23), on a broker that kept nothing (mosquitto
// without persistence after a kill, or the embedded broker, which restarts
// with the bridge). A bridge that never says it latched (its link was
// down, or it has not connected yet) is not judged: the oracle judges only
// a latch the bridge knew of.
func (s *soak) latchedRestart() error {
	if !s.truth.linkUp() {
		s.record("latched restart skipped: link down")
		return nil
	}
	s.record("latched restart: alarm ON, latched, OFF, bridge restart")
	if err := s.alarm("ON"); err != nil {
		return err
	}
	if !s.waitUntil(10*time.Second, 50*time.Millisecond, s.saysLatched) {
		s.record("latched restart not judged: the bridge did not say alarm_latched within 10 s")
		return nil
	}
	s.truth.latchConfirmed()
	if err := s.alarm("OFF"); err != nil {
		return err
	}
	if err := s.bridgeRestart(); err != nil || s.err() != nil {
		return err
	}
	// The new process is judged once it is linked: its first heartbeat
	// came back, so it has read the latch from its state directory and
	// had the retained values (the alarm's OFF among them). Linked: it is
	// subscribed on a live link (a heartbeat it sent after its cause was
	// undone reached the monitor).
	if !s.waitUntil(2*startGrace, 20*time.Millisecond, s.truth.linkUp) {
		s.record("latched restart not judged: the new process did not link within %v", 2*startGrace)
		return nil // the monitor judges what it can; the link is its own hazard
	}
	if st, err := s.apiState(); err == nil && !st.Latched {
		s.fail("R4/R23: the fire release latch did not survive the restart: the new process says alarm_latched false after alarm OFF without a RESET")
		return nil
	}
	// Hold still past relock_delay and the release budget: a bridge that
	// lost the latch has relocked the maglocks by then. (A wait that can
	// only miss a relock, never invent one.)
	select {
	case <-s.failed:
		return nil
	case <-time.After(soakRelockDelay + 1200*time.Millisecond):
	}
	levels, _, _, err := readRelays(s.cfg.StateFile)
	if err != nil {
		return err
	}
	var relocked []string
	for _, ch := range s.cfg.channels(true) {
		if levels[ch] && !s.truth.faulted(ch, time.Now()) {
			relocked = append(relocked, ch)
		}
	}
	if len(relocked) > 0 {
		s.fail("R4/R23: the fire release latch did not survive the restart: maglocks %v powered again after alarm OFF without a RESET", relocked)
	}
	s.latchRestarts++
	return nil
}

// saysLatched reports whether the bridge says (its API) that the fire
// release is latched.
func (s *soak) saysLatched() bool {
	st, err := s.apiState()
	return err == nil && st.Latched
}

// linkedPerBridge reports whether the bridge says its link is healthy: it
// is connected and has no broker or startup hazard, so its first heartbeat
// on this connection came back and it has published its whole state since.
// A bridge whose link is not healthy cannot publish, and its retained
// state on the broker is what it last managed to send.
func (s *soak) linkedPerBridge() bool {
	st, err := s.apiState()
	if err != nil || !st.Connected || st.Startup {
		return false
	}
	for _, h := range st.Hazards {
		if h == "broker" || h == "startup" {
			return false
		}
	}
	return true
}

// fault breaks a random door's relay writes (delay, hang or error), at most
// two at a time, or clears every fault.
func (s *soak) fault() error {
	on := s.truth.faultedNow()
	if len(on) > 0 && (len(on) >= 2 || s.rnd.IntN(2) == 0) {
		return s.clearFaults()
	}
	i := s.rnd.IntN(soakDoorCount)
	var spec map[string]any
	kind := []string{"delay", "hang", "error"}[s.rnd.IntN(3)]
	switch kind {
	case "delay":
		spec = map[string]any{"delay": fmt.Sprintf("%dms", 200+s.rnd.IntN(1000))}
	case "hang":
		spec = map[string]any{"hang": true}
	default:
		spec = map[string]any{"error": "i2c: no ack"}
	}
	if s.faultSpecs == nil {
		s.faultSpecs = map[int]map[string]any{}
	}
	s.faultSpecs[i] = spec
	b, _ := json.Marshal(spec)
	s.record("fault on %s (channel %s): %s", doorID(i), doorChannel(i), b)
	s.truth.faultSet(doorChannel(i), kind, time.Now()) // before the bridge can see it
	return writeFaults(s.faultsPath, s.faultSpecs)
}

// clearFaults removes every relay fault.
func (s *soak) clearFaults() error {
	if s.faultsPath == "" || len(s.faultSpecs) == 0 {
		return nil
	}
	s.record("faults cleared")
	s.faultSpecs = nil
	if err := writeFaults(s.faultsPath, nil); err != nil {
		return err
	}
	t := time.Now() // after the bridge can see it
	for ch := range s.truth.faultedNow() {
		s.truth.faultCleared(ch, t)
	}
	return nil
}
