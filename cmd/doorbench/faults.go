package main

// Fault isolation figures (R22: no board may delay the release of a door
// on another board). The sim driver's faults_file breaks chosen doors'
// writes while an alarm is timed to the release of every other maglock:
//
//   - alarm_release_hung_board_ms: door 0's writes hang (a board that
//     stopped answering and a driver that never times out);
//   - alarm_release_slow_boards_ms: doors 0, 1 and 2 answer every write
//     after 1 s (a Modbus board at its timeout).
//
// The faulted doors come first in the config, where a bridge that writes
// relays one after the other in config order waits on them before every
// other door. Run with --only faults (it is not part of the default run:
// each slow round waits for the slow doors to relock).
//
//	go run ./cmd/doorbench --only faults --doors 64 --broker mosquitto --rounds 20

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	figHungBoard  = "alarm_release_hung_board_ms"
	figSlowBoards = "alarm_release_slow_boards_ms"
	// faultReleaseWait is how long a round waits for the healthy maglocks:
	// far past the 1 s budget, so that a bridge that waits on the slow
	// boards shows its figure, and one that waits on a hung board fails.
	faultReleaseWait = 10 * time.Second
	releaseBudgetMS  = 1000 // safety.md: released within 1 s of the alarm
)

func init() {
	phases = append(phases, "faults")
	figureOrder = append(figureOrder, figHungBoard, figSlowBoards)
}

// faultScenario is one set of broken doors.
type faultScenario struct {
	fig    string
	faults map[int]map[string]any // door index -> fault, as faults_file spells it
}

func faultScenarios() []faultScenario {
	slow := map[string]any{"delay": "1s"}
	return []faultScenario{
		{figHungBoard, map[int]map[string]any{0: {"hang": true}}},
		{figSlowBoards, map[int]map[string]any{0: slow, 1: slow, 2: slow}},
	}
}

// writeFaults writes the scenario's faults_file content (nil: no fault).
func writeFaults(path string, faults map[int]map[string]any) error {
	m := map[string]any{}
	for i, f := range faults {
		m[doorChannel(i)] = f
	}
	b, _ := json.Marshal(m)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// faults runs every fault scenario with n doors (only with --only faults).
func (b *bench) faults(t *target, n int, r *run) error {
	if !b.opts.Only["faults"] {
		return nil
	}
	if n < 8 {
		r.NA[figHungBoard] = "needs at least 8 doors"
		r.NA[figSlowBoards] = r.NA[figHungBoard]
		return nil
	}
	var errs []error // each scenario runs, whatever the other did
	for _, sc := range faultScenarios() {
		b.logf("%s, %d doors: %s (%d rounds)", t.kind, n, sc.fig, b.opts.Rounds)
		err := b.faultScenario(t, n, sc, r)
		var missed errMissedRelease
		if errors.As(err, &missed) {
			// A figure of its own: the run's other figures stay.
			r.NA[sc.fig] = "FAILED: " + missed.Error()
			b.logf("%s, %d doors: %s FAILED (R22): %v", t.kind, n, sc.fig, err)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sc.fig, err))
			continue
		}
		s := summarize(r.samples[sc.fig])
		verdict := "within"
		if s.P99 > releaseBudgetMS {
			verdict = "OVER"
		}
		b.logf("%s, %d doors: %s p50 %.1f / p99 %.1f / max %.1f ms: p99 %s the 1 s budget", t.kind, n, sc.fig, s.P50, s.P99, s.Max, verdict)
	}
	return errors.Join(errs...)
}

func (b *bench) faultScenario(t *target, n int, sc faultScenario, r *run) error {
	var faultsPath string
	s, err := b.startFresh(t, n, fmt.Sprintf("faults-%s-%d", t.kind, n), "bench-faults", func(c *bridgeConfig) {
		faultsPath = filepath.Join(filepath.Dir(c.StateFile), "faults.json")
		c.FaultsFile = faultsPath
	})
	if err != nil {
		return err
	}
	defer s.close()
	var healthy []string // the maglocks whose boards answer
	for i := range n {
		if _, broken := sc.faults[i]; doorFailSafe(i) && !broken {
			healthy = append(healthy, doorChannel(i))
		}
	}
	relocks := func(m map[string]bool) bool {
		for i := range n {
			if _, broken := sc.faults[i]; broken {
				// A hung write never ends; a board slower than the
				// bridge's write deadline keeps its doors JAMMED.
				continue
			}
			if m[doorChannel(i)] != doorFailSafe(i) {
				return false
			}
		}
		return true
	}
	if err := writeFaults(faultsPath, sc.faults); err != nil {
		return err
	}
	// The sim driver reads its faults file again every 20 ms.
	time.Sleep(200 * time.Millisecond)
	for round := range b.opts.Rounds {
		cur := s.w.current().Seq
		t0 := time.Now()
		if err := s.cl.publish(alarmTopic(), []byte("ON"), 1, true); err != nil {
			return err
		}
		v, err := s.w.waitFor(cur, allLevel(healthy, false), faultReleaseWait)
		if err != nil {
			return errMissedRelease(fmt.Sprintf("round %d: the %d healthy maglocks were not all released within %v while %s (log %s)",
				round, len(healthy), faultReleaseWait, faultedDoors(sc), s.p.log))
		}
		r.add(sc.fig, ms(v.At.Sub(t0)))
		if err := s.cl.publish(alarmTopic(), []byte("OFF"), 1, true); err != nil {
			return err
		}
		if _, err := s.w.waitFor(v.Seq, relocks, 15*time.Second); err != nil {
			return fmt.Errorf("round %d: relock: %w (log %s)", round, err, s.p.log)
		}
		if err := s.cl.waitQuiet(50*time.Millisecond, 10*time.Second); err != nil {
			return err
		}
		jitter(tickInterval)
	}
	// No fault: a hung write ends, and the bridge stops cleanly.
	if err := writeFaults(faultsPath, nil); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	return s.stop()
}

// errMissedRelease: the healthy maglocks were not released at all.
type errMissedRelease string

func (e errMissedRelease) Error() string { return string(e) }

func faultedDoors(sc faultScenario) string {
	var out []string
	for _, i := range slices.Sorted(maps.Keys(sc.faults)) {
		b, _ := json.Marshal(sc.faults[i])
		out = append(out, doorID(i)+" "+string(b))
	}
	return strings.Join(out, ", ")
}
