package bridge

import (
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// fullSnapshot is the snapshot built from nothing, as at start: what the
// incremental one must equal.
func fullSnapshot(l *loop) *Snapshot {
	inc, hz := l.b.snapshot.Load(), l.snapDoorHz
	l.b.snapshot.Store(nil)
	l.snapDoorHz = nil
	l.snapshot(l.now())
	full := l.b.snapshot.Load()
	l.b.snapshot.Store(inc)
	l.snapDoorHz = hz
	return full
}

// frozen is a deep copy of s's door views: nothing in it is shared with s.
func frozen(s *Snapshot) []DoorView {
	if s == nil {
		return nil
	}
	clone := func(p *bool) *bool {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	out := make([]DoorView, len(s.Doors))
	for i, v := range s.Doors {
		out[i] = *v
		out[i].Energized, out[i].Locked = clone(v.Energized), clone(v.Locked)
		out[i].Hazards = slices.Clone(v.Hazards)
		if v.RelockAt != nil {
			at := *v.RelockAt
			out[i].RelockAt = &at
		}
	}
	return out
}

// The HTTP snapshot is built again only for the doors whose view changed
// (issue 13); whatever happens, it must show what a snapshot built from
// nothing shows.
func TestSnapshotEqualsAFullRebuild(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
		l, _ := newTestLoop(t, withClock(clk), idle(), manyDoors(6))
		actions := rapid.SliceOfN(rapid.IntRange(0, 6), 1, 25).Draw(rt, "actions")
		for i, a := range actions {
			// What a reader holding the last snapshot sees must not change
			// under it: the next snapshot shares its unchanged views.
			old := l.b.snapshot.Load()
			was := frozen(old)
			d := l.b.doors[rapid.IntRange(0, len(l.b.doors)-1).Draw(rt, "door")]
			switch a {
			case 0, 1, 2:
				l.onMessage(evMessage{gen: l.gen, topic: d.topics.Set, payload: []byte([]string{"UNLOCK", "LOCK", "OPEN"}[a])})
			case 3:
				l.alarm("ON")
			case 4:
				l.alarm("OFF")
			case 5:
				l.onMessage(evMessage{gen: l.gen, topic: l.b.topics.LockdownSet, payload: []byte(rapid.SampledFrom([]string{"ON", "OFF"}).Draw(rt, "lockdown"))})
			case 6:
				clk.t = clk.t.Add(time.Duration(rapid.IntRange(1, 3000).Draw(rt, "ms")) * time.Millisecond)
				l.link()
				l.evaluate("timer")
			}
			l.waitRelays(wait, "relay")
			if inc, full := l.b.snapshot.Load(), fullSnapshot(l); !reflect.DeepEqual(inc, full) {
				rt.Fatalf("after action %d (%d): the snapshot\n%+v\nbut built from nothing\n%+v", i, a, inc, full)
			}
			if now := frozen(old); !reflect.DeepEqual(now, was) {
				rt.Fatalf("action %d (%d) changed the snapshot before it: it was\n%+v\nand is now\n%+v", i, a, was, now)
			}
		}
	})
}

// A change to one door among 256 builds that door's view only: the
// snapshot allocates itself, its door list and the changed view, not 256
// views (issue 13).
func TestSnapshotAfterAChangeBuildsOneView(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l, _ := newTestLoop(t, withClock(clk), idle(), manyDoors(256))
	d := l.b.doors[101]
	causes := []string{"test-a", "test-b"}
	i := 0
	allocs := testing.AllocsPerRun(20, func() {
		d.cause = causes[i%2] // a field of the door's view
		i++
		l.snapshot(l.now())
	})
	if allocs > 10 {
		t.Fatalf("a snapshot after a change to one of 256 doors allocates %.0f times, want at most 10", allocs)
	}
	// Nor does it copy the 256 views (about 37 kB): only their pointers.
	const runs = 50
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		d.cause = causes[i%2]
		i++
		l.snapshot(l.now())
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 8<<10 {
		t.Fatalf("a snapshot after a change to one of 256 doors allocates %d bytes, want at most 8 kB (its door list: 256 pointers, and one view)", per)
	}
}

// An evaluation in which nothing changes (the timer's, or one after a
// message that changes nothing) allocates nothing, however many doors: it
// used to list the armed fail-safe doors every time, for a drill that only
// a rising hazard can start.
func TestQuietEvaluationAllocatesNothing(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l, _ := newTestLoop(t, withClock(clk), idle(), manyDoors(256))
	l.evaluate("test")
	if allocs := testing.AllocsPerRun(20, func() { l.evaluate("test") }); allocs != 0 {
		t.Fatalf("an evaluation of 256 doors with nothing to change allocates %.0f times, want 0", allocs)
	}
}
