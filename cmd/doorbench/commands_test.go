package main

import (
	"testing"
	"time"
)

// TestMatchCommands checks how a stream's commands are matched with relay
// changes and echoes: in order, a lost command and the no-op after it left
// unmatched, a late effect still given to its own command.
func TestMatchCommands(t *testing.T) {
	c := bridgeConfig{ID: "bench", Doors: 1} // door 0 is fail-safe: powered when locked
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// UNLOCK, LOCK, UNLOCK, LOCK, UNLOCK at 0, 20, 40, 60, 80 ms; the
	// second UNLOCK (40 ms) is lost, so the LOCK at 60 ms changes nothing.
	sent := []sentCommand{
		{door: 0, unlock: true, at: at(0), seq: 1},
		{door: 0, unlock: false, at: at(20), seq: 2},
		{door: 0, unlock: true, at: at(40), seq: 3},
		{door: 0, unlock: false, at: at(60), seq: 3},
		{door: 0, unlock: true, at: at(80), seq: 3},
	}
	versions := []relayVersion{
		{Seq: 2, At: at(1), Levels: map[string]bool{"0": false}},
		{Seq: 3, At: at(35), Levels: map[string]bool{"0": true}}, // the LOCK, 15 ms late
		{Seq: 4, At: at(81), Levels: map[string]bool{"0": false}},
	}
	relays := matchRelays(c, sent, versions)
	want := []time.Time{at(1), at(35), {}, {}, at(81)}
	for k := range want {
		if !relays[k].Equal(want[k]) {
			t.Errorf("relay of command %d at %v, want %v", k, relays[k], want[k])
		}
	}
	echoes := map[string][]msg{c.stateTopic(0): {
		{Topic: c.stateTopic(0), Payload: []byte("UNLOCKED"), At: at(2)},
		{Topic: c.stateTopic(0), Payload: []byte("LOCKED"), At: at(36)},
		{Topic: c.stateTopic(0), Payload: []byte("UNLOCKED"), At: at(82)},
	}}
	got := matchEchoes(c, sent, echoes)
	want = []time.Time{at(2), at(36), {}, {}, at(82)}
	for k := range want {
		if !got[k].Equal(want[k]) {
			t.Errorf("echo of command %d at %v, want %v", k, got[k], want[k])
		}
	}
}
