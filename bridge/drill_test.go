package bridge

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// countingLog keeps log records to count those holding a string.
type countingLog struct {
	mu   sync.Mutex
	msgs []string
}

func (c *countingLog) count(substr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

type logWriter struct{ c *countingLog }

func (w logWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	w.c.msgs = append(w.c.msgs, string(p))
	return len(p), nil
}

// logger is a logger that writes to c.
func (c *countingLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(logWriter{c}, nil)) }

const overdueMsg = "release drill overdue"

// A release drill is an alarm that released the locked fail-safe doors. Its
// time survives a restart in bridge.state_dir; 31 days later a drill is due
// again, and the log says so once a day.
func TestReleaseDrillReminder(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	logs := &countingLog{}
	l, _ := newTestLoop(t, withClock(clk), withoutLatch(), withStateDir(dir), withLog(logs.logger()))

	// Never drilled: due from the start, warned once a day.
	if !l.drillOverdue(clk.t) {
		t.Fatal("no drill on record, but none is due")
	}
	l.checkDrill(clk.t)
	clk.t = clk.t.Add(time.Hour)
	l.checkDrill(clk.t)
	if n := logs.count(overdueMsg); n != 1 {
		t.Fatalf("warned %d times in the first hour, want once", n)
	}
	if n := logs.count("in 31 days"); n != 0 {
		t.Fatal("a bridge never drilled claimed 31 days without a drill")
	}
	clk.t = clk.t.Add(23 * time.Hour)
	l.checkDrill(clk.t)
	if n := logs.count(overdueMsg); n != 2 {
		t.Fatalf("warned %d times after a day, want twice", n)
	}

	// An alarm while the doors are still released (start-up) is no drill.
	l.alarm("ON")
	if !l.drill.last.IsZero() {
		t.Fatal("an alarm that released no locked door counted as a drill")
	}
	l.alarm("OFF")
	l.settle(clk)
	if !l.b.byID["fs"].power {
		t.Fatal("fail-safe door not locked")
	}

	// The drill: the alarm releases the locked maglock.
	drillAt := clk.t
	l.alarm("ON")
	if l.b.byID["fs"].power {
		t.Fatal("alarm did not release the fail-safe door")
	}
	if !l.drill.last.Equal(drillAt) || l.drillOverdue(clk.t) {
		t.Fatalf("drill not recorded: last %v, overdue %v", l.drill.last, l.drillOverdue(clk.t))
	}
	saved, err := l.b.state.Load(drillRecord, nil, nil)
	if err != nil || string(saved) != drillAt.Format(time.RFC3339) {
		t.Fatalf("state_dir/%s = %q, %v; want %s", drillRecord, saved, err, drillAt.Format(time.RFC3339))
	}
	l.alarm("OFF")

	// Not due for 31 days; then due, and warned at once.
	clk.t = drillAt.Add(DrillInterval - time.Second)
	l.checkDrill(clk.t)
	if l.drillOverdue(clk.t) || logs.count(overdueMsg) != 2 {
		t.Fatalf("due %v before 31 days (warnings %d)", l.drillOverdue(clk.t), logs.count(overdueMsg))
	}
	clk.t = drillAt.Add(DrillInterval)
	l.checkDrill(clk.t)
	if !l.drillOverdue(clk.t) || logs.count(overdueMsg) != 3 {
		t.Fatalf("not due after 31 days (warnings %d)", logs.count(overdueMsg))
	}

	// A restart keeps the last drill from state_dir (to the second).
	l2, _ := newTestLoop(t, withClock(clk), withoutLatch(), withStateDir(dir))
	if !l2.drill.last.Equal(drillAt.Truncate(time.Second)) {
		t.Fatalf("after a restart the last drill is %v, want %v", l2.drill.last, drillAt)
	}
}

// Without a state_dir the last drill is restored from the retained
// B/N/drill/last, forward only; until the broker had its say, nothing is
// claimed (or published).
func TestReleaseDrillRestoredFromBroker(t *testing.T) {
	l, clk := newTestLoop(t, withClock(&fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}), withoutLatch())
	if l.drillKnown() || l.drillOverdue(clk.t) {
		t.Fatal("claims to know the last drill before the broker restored it")
	}
	topic := l.b.topics.DrillLast
	if topic != "db/t1/drill/last" || l.b.topics.DrillOverdue != "db/t1/drill_overdue/state" {
		t.Fatalf("topics %q, %q", topic, l.b.topics.DrillOverdue)
	}
	restore := func(payload string, retained bool) { l.send(topic, payload, retained) }
	last := clk.t.Add(-10 * 24 * time.Hour)
	restore(last.Add(time.Hour).Format(time.RFC3339), false) // live, not retained: ignored
	restore("last tuesday", true)
	restore(clk.t.Add(48*time.Hour).Format(time.RFC3339), true) // in the future: ignored
	if !l.drill.last.IsZero() {
		t.Fatalf("restored %v from a message it must ignore", l.drill.last)
	}
	restore(last.Format(time.RFC3339), true)
	restore(last.Add(-time.Hour).Format(time.RFC3339), true) // older: never backwards
	if !l.drill.last.Equal(last) || !l.drillKnown() || l.drillOverdue(clk.t) {
		t.Fatalf("last drill %v (known %v), want %v", l.drill.last, l.drillKnown(), last)
	}
	if subs := strings.Join(slices.Concat(l.subscriptions()...), " "); !strings.Contains(subs, topic) {
		t.Fatalf("not subscribed to %s: %s", topic, subs)
	}
}

// A bridge with fail-secure doors only has no release to drill.
func TestNoDrillWithoutFailSafeDoors(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	l, _ := newTestLoop(t, withClock(clk), withStateDir(t.TempDir()), withConfig(func(c *config.Config) { c.Doors = c.Doors[1:] }))
	if l.drillOverdue(clk.t) {
		t.Fatal("a drill is due on a bridge without fail-safe doors")
	}
}
