package bridge

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// Hot paths of the control loop, measured (go test -bench . -benchmem ./bridge):
// what one alarm, one command and one idle timer tick cost with 256 doors.

var commandPayloads = []struct {
	name    string
	payload string
}{
	{"plain", "UNLOCK"},
	{"json", `{"action": "OPEN", "code": "1234"}`},
	{"json_ts", `{"action": "UNLOCK", "code": "None", "ts": 1800000000.25}`},
	{"garbage", "unlock please"},
}

func BenchmarkParseDoorCommand(b *testing.B) {
	now := time.Unix(1_800_000_001, 0)
	for _, p := range commandPayloads {
		payload := []byte(p.payload)
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ParseDoorCommand(payload, now)
			}
		})
	}
}

// benchDoors is the door count of the loop benchmarks.
const benchDoors = 256

// manyDoors has n doors on the sim driver (even doors fail-safe, odd
// fail-secure), and no latch or relock_delay: clearing the alarm relocks
// them in the same evaluation.
func manyDoors(n int) loopOption {
	return withConfig(func(cfg *config.Config) {
		cfg.Watchdog.RelockDelay = 0
		cfg.Watchdog.AlarmLatch = false
		cfg.Doors = nil
		for i := range n {
			mode := config.FailSafe
			if i%2 == 1 {
				mode = config.FailSecure
			}
			cfg.Doors = append(cfg.Doors, config.Door{ID: fmt.Sprintf("d%03d", i), Name: fmt.Sprintf("Door %d", i), FailMode: mode,
				Relay: config.Line{Driver: "sim", Channel: strconv.Itoa(i)}, UnlockTime: time.Second})
		}
	})
}

// benchLoop is a loop over n doors (manyDoors), linked and with the alarm
// clear, so every door is locked: where the loop benchmarks start. Its
// MQTT publishes go to a queue that drain empties.
func benchLoop(b *testing.B, n int) *loop {
	l, _ := newTestLoop(b, manyDoors(n), withPublishQueue())
	b.Cleanup(l.b.closeDrivers)
	l.send(l.b.cfg.Alarms[0].Topic, "OFF", true)
	settle(b, l)
	for _, d := range l.b.doors {
		if !d.locked() {
			b.Fatalf("door %s not locked at the start of the benchmark (cause %s)", d.cfg.ID, d.cause)
		}
	}
	return l
}

// settle does what the loop's run does until the relay writers are done:
// it waits (real time: they are goroutines) until every writer has written
// what it was asked, hands the loop their news, and empties the publish
// queue; until there is no news.
func settle(b *testing.B, l *loop) {
	for {
		// The writers' time (the sim driver marshals every relay into its
		// state file) is not the loop's.
		b.StopTimer()
		deadline := time.Now().Add(5 * time.Second)
		for !writersDone(l) {
			if time.Now().After(deadline) {
				b.Fatal("relay writers still busy after 5 s")
			}
			runtime.Gosched()
		}
		b.StartTimer()
		drain(l)
		select {
		case <-l.b.relayNews:
			l.onRelayNews()
		default:
			return
		}
	}
}

func writersDone(l *loop) bool {
	for _, d := range l.b.doors {
		r := d.relay
		r.mu.Lock()
		done := r.busy == 0 && r.wrote == r.seq
		r.mu.Unlock()
		if !done {
			return false
		}
	}
	return true
}

// drain empties the publish queue, as the publisher goroutine would.
func drain(l *loop) int {
	n := 0
	for {
		select {
		case <-l.mq.queue:
			n++
		default:
			return n
		}
	}
}

// An idle timer tick: nothing changes, every door is evaluated.
func BenchmarkEvaluate256DoorsIdle(b *testing.B) {
	l := benchLoop(b, benchDoors)
	b.ReportAllocs()
	for b.Loop() {
		l.evaluate("test")
		drain(l)
	}
}

// An alarm and its clearing: 128 maglocks released and relocked, every
// change published. One op is two evaluations.
func BenchmarkEvaluate256DoorsAlarm(b *testing.B) {
	l := benchLoop(b, benchDoors)
	topic := l.b.cfg.Alarms[0].Topic
	on, off := []byte("ON"), []byte("OFF")
	b.ReportAllocs()
	for b.Loop() {
		l.onMessage(evMessage{topic: topic, payload: on, retained: true})
		settle(b, l)
		l.onMessage(evMessage{topic: topic, payload: off, retained: true})
		settle(b, l)
	}
	if d := l.b.doors[0]; !d.locked() {
		b.Fatalf("door %s not relocked after the alarm cleared (cause %s)", d.cfg.ID, d.cause)
	}
}

// A command to one door among 256: UNLOCK then LOCK (one op is both).
func BenchmarkCommand256Doors(b *testing.B) { benchCommand(b, benchDoors) }

// The same among 4: what a command costs that does not grow with the doors.
func BenchmarkCommand4Doors(b *testing.B) { benchCommand(b, 4) }

func benchCommand(b *testing.B, n int) {
	l := benchLoop(b, n)
	d := l.b.doors[n/2]
	unlock, lock := []byte("UNLOCK"), []byte("LOCK")
	b.ReportAllocs()
	for b.Loop() {
		l.onMessage(evMessage{topic: d.topics.Set, payload: unlock})
		settle(b, l)
		l.onMessage(evMessage{topic: d.topics.Set, payload: lock})
		settle(b, l)
	}
	if !d.locked() {
		b.Fatalf("door %s not locked after LOCK (cause %s)", d.cfg.ID, d.cause)
	}
}
