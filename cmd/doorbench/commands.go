package main

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// sentCommand is one command of a stream: its door, whether it unlocks,
// when it was written and the relay version current at that moment.
type sentCommand struct {
	door   int
	unlock bool
	at     time.Time
	seq    int
}

// commandStream sends opts.Commands commands at QoS 0, one every
// opts.CommandGap, without waiting for their effect (as a person pressing
// buttons or an automation would): UNLOCK and LOCK alternate on each door
// and the doors (all, or the first opts.CommandDoors) take turns. Afterwards each command is matched with its
// relay change (command_relay_ms) and its state echo (command_echo_ms). A
// command the bridge's audit events neither accepted nor refused is lost
// (commands_lost); refused ones are counted apart (commands_refused).
func (b *bench) commandStream(s *session, r *run) error {
	c := s.c
	var mu sync.Mutex
	echoes := map[string][]msg{}
	s.cl.tap(func(m msg) {
		mu.Lock()
		echoes[m.Topic] = append(echoes[m.Topic], m)
		mu.Unlock()
	})
	defer s.cl.tap(nil)
	// The bridge's audit stream says which commands it accepted or refused.
	if err := s.cl.subscribe(c.prefix() + "/events"); err != nil {
		return err
	}
	start := s.w.current().Seq
	sent := make([]sentCommand, 0, b.opts.Commands)
	next := time.Now()
	doors := c.Doors
	if b.opts.CommandDoors > 0 {
		doors = min(doors, b.opts.CommandDoors)
	}
	for k := range b.opts.Commands {
		i := k % doors
		cmd := sentCommand{door: i, unlock: (k/doors)%2 == 0}
		payload := "LOCK"
		if cmd.unlock {
			payload = "UNLOCK"
		}
		time.Sleep(time.Until(next)) // the gap between commands is the test's pace
		cmd.seq, cmd.at = s.w.current().Seq, time.Now()
		if err := s.cl.publish(c.setTopic(i), []byte(payload), 0, false); err != nil {
			return err
		}
		sent = append(sent, cmd)
		next = cmd.at.Add(b.opts.CommandGap)
	}
	// Late effects still count: wait until the bridge has gone quiet.
	if err := s.cl.waitQuiet(500*time.Millisecond, 30*time.Second); err != nil {
		return err
	}
	versions, err := s.w.since(start)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	relayAt := matchRelays(c, sent, versions)
	echoAt := matchEchoes(c, sent, echoes)
	lost, refused := auditCounts(sent, echoes[c.prefix()+"/events"])
	noEffect, noRelay, noEcho := 0, 0, 0
	for k, cmd := range sent {
		prev := k - doors
		changed := !relayAt[k].IsZero() || !echoAt[k].IsZero()
		prevChanged := prev < 0 || !relayAt[prev].IsZero() || !echoAt[prev].IsZero()
		switch {
		case !changed && prevChanged:
			noEffect++
			b.logf("command %d (door %d, %s at %s): no relay change, no echo", k, cmd.door, action(cmd.unlock), cmd.at.Format("15:04:05.000000"))
		case !changed: // its door was already where it asks, the command before was lost
		case relayAt[k].IsZero():
			noRelay++
		case echoAt[k].IsZero():
			noEcho++
		}
		if !relayAt[k].IsZero() {
			r.add("command_relay_ms", ms(relayAt[k].Sub(cmd.at)))
		}
		if !echoAt[k].IsZero() {
			r.add("command_echo_ms", ms(echoAt[k].Sub(cmd.at)))
		}
	}
	r.add("commands_sent", float64(len(sent)))
	r.add("commands_lost", float64(lost))
	r.add("commands_refused", float64(refused))
	// Accepted, but the door's next command came before it could act (the
	// bridge was held up longer than 2 × doors × gap): the door ends as the
	// last command asked.
	r.add("commands_superseded", float64(max(0, noEffect-lost-refused)))
	if lost > 0 {
		b.logf("%d commands neither accepted nor refused by the bridge (its audit events)", lost)
	}
	// An echo without a relay change seen is the watcher's miss: two
	// versions of the state file written closer together than it reads
	// them (the bridge's audit log has every relay change). A relay change
	// without its echo would be the bridge's fault.
	if noRelay > 0 {
		b.logf("%d commands echoed without their relay change seen (two versions of the state file read as one)", noRelay)
	}
	if noEcho > 0 {
		return fmt.Errorf("%d commands changed a relay without an echo", noEcho)
	}
	return s.relockAll()
}

// auditCounts counts, door by door, the commands sent that the bridge's
// audit events neither accepted nor refused (lost), and those it refused.
func auditCounts(sent []sentCommand, events []msg) (lost, refused int) {
	answered := map[string]int{}
	for _, m := range events {
		var e struct{ Kind, Door, Outcome string }
		if json.Unmarshal(m.Payload, &e) != nil || e.Kind != "command" {
			continue
		}
		answered[e.Door]++
		if e.Outcome == "rejected" {
			refused++
		}
	}
	perDoor := map[string]int{}
	for _, cmd := range sent {
		perDoor[doorID(cmd.door)]++
	}
	for d, n := range perDoor {
		lost += max(0, n-answered[d])
	}
	return lost, refused
}

func action(unlock bool) string {
	if unlock {
		return "UNLOCK"
	}
	return "LOCK"
}

// relayLevel is the coil level of door i when locked or unlocked: a
// fail-safe door (maglock) is powered to lock, a fail-secure one to unlock.
func relayLevel(i int, unlock bool) bool { return doorFailSafe(i) != unlock }

// matchRelays returns, for each command, when its door's relay reached the
// level it asked for (zero when it did not). Each door's relay changes are
// taken in order: a change belongs to the latest command of that door sent
// before it that asked for that level; the door's older commands are
// settled (a lost one stays zero). This holds while every effect comes
// before the door's next command of the same kind (2 × doors × gap, 160 ms
// for 4 doors 20 ms apart).
func matchRelays(c bridgeConfig, sent []sentCommand, versions []relayVersion) []time.Time {
	at := make([]time.Time, len(sent))
	for i, ks := range commandsByDoor(c, sent) {
		ch := doorChannel(i)
		level, seen := false, false
		next := 0 // the first command of this door not yet settled
		for _, v := range versions {
			l, ok := v.Levels[ch]
			if !ok || (seen && l == level) {
				continue
			}
			level, seen = l, true
			next = claim(sent, ks, next, at, v.At, func(cmd sentCommand) bool {
				return cmd.seq < v.Seq && relayLevel(i, cmd.unlock) == l
			}, func(cmd sentCommand) bool { return cmd.seq < v.Seq })
		}
	}
	return at
}

// claim gives the moment t of one change to the latest of a door's commands
// ks[next:] that was sent before it and matches it; it returns the first
// command left unsettled.
func claim(sent []sentCommand, ks []int, next int, at []time.Time, t time.Time, match, before func(sentCommand) bool) int {
	found := -1
	for j := next; j < len(ks) && before(sent[ks[j]]); j++ {
		if match(sent[ks[j]]) {
			found = j
		}
	}
	if found < 0 {
		return next
	}
	at[ks[found]] = t
	return found + 1
}

// matchEchoes does for the door states published what matchRelays does for
// the relays.
func matchEchoes(c bridgeConfig, sent []sentCommand, echoes map[string][]msg) []time.Time {
	at := make([]time.Time, len(sent))
	for i, ks := range commandsByDoor(c, sent) {
		next := 0
		last := ""
		for _, m := range echoes[c.stateTopic(i)] {
			p := string(m.Payload)
			if p == last || (p != "LOCKED" && p != "UNLOCKED") {
				continue
			}
			last = p
			before := func(cmd sentCommand) bool { return cmd.at.Before(m.At) }
			next = claim(sent, ks, next, at, m.At, func(cmd sentCommand) bool {
				return before(cmd) && (p == "UNLOCKED") == cmd.unlock
			}, before)
		}
	}
	return at
}

// commandsByDoor lists the indexes of each door's commands, in order.
func commandsByDoor(c bridgeConfig, sent []sentCommand) [][]int {
	by := make([][]int, c.Doors)
	for k, cmd := range sent {
		by[cmd.door] = append(by[cmd.door], k)
	}
	return by
}

// relockAll locks every door again after a stream and waits for it.
func (s *session) relockAll() error {
	cur := s.w.current().Seq
	for i := range s.c.Doors {
		if err := s.cl.publish(s.c.setTopic(i), []byte("LOCK"), 0, false); err != nil {
			return err
		}
	}
	if _, err := s.w.waitFor(cur-1, s.locked, 10*time.Second); err != nil {
		return fmt.Errorf("doors did not lock after the command stream: %w", err)
	}
	return s.cl.waitQuiet(200*time.Millisecond, 10*time.Second)
}
