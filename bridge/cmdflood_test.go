package bridge

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// floodN is the size of a junk-command flood in these tests: enough that
// per-message output would be obvious (and, at ~250 bytes an audit record,
// would fill the 64 kB audit file eight times over).
const floodN = 2000

// logSink collects a bridge's log output for counting.
type logSink struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func slogTo(s *logSink) *slog.Logger { return slog.New(slog.NewTextHandler(s, nil)) }

// floodHarness is a harness whose log the test reads, with audit.file set
// to its smallest size and one rotated file.
func floodHarness(t *testing.T, mutate func(*config.Config)) (*harness, *logSink, string) {
	t.Helper()
	br := testbroker.Start(t)
	h := &harness{t: t, broker: br}
	h.c = testbroker.Connect(t, br.URL(), "watcher-"+t.Name())
	h.cfg = testConfig(br.URL())
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	h.cfg.Audit.File, h.cfg.Audit.MaxSize, h.cfg.Audit.MaxFiles = path, config.MinAuditMaxSize, 1
	// The shipped heartbeat timings: these tests are about junk, not about
	// a loaded machine, where the heartbeat echo queued behind a flood
	// came late, the bridge dropped its link after 2×500 ms of silence,
	// and the rest of the flood was lost with it (not counted).
	h.cfg.Watchdog.HeartbeatInterval, h.cfg.Watchdog.HeartbeatTimeout = time.Second, 3*time.Second
	if mutate != nil {
		mutate(h.cfg)
	}
	if err := h.cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	logs := &logSink{}
	h.log = slog.New(slog.NewTextHandler(logs, nil))
	t.Cleanup(func() {
		if out := logs.String(); t.Failed() {
			t.Logf("the bridge's log, its last %d kB:\n%s", logTailMax>>10, out[max(0, len(out)-logTailMax):])
		}
	})
	h.start()
	return h, logs, path
}

// flood publishes n messages (topic and payload of message i from msg) at
// QoS 1 without waiting for each acknowledgement, then waits for them all.
func (h *harness) flood(n int, msg func(i int) (string, string)) {
	h.t.Helper()
	pc := h.c.Paho()
	var last interface{ Wait() bool }
	for i := range n {
		topic, payload := msg(i)
		last = pc.Publish(topic, 1, false, payload)
	}
	if last != nil {
		last.Wait()
	}
}

// floodWait is the deadline for a flood to be counted: generous, since a
// bridge that does per-message work for junk is slow to get through it.
const floodWait = 30 * time.Second

// counted waits up to floodWait for cond (the flood was counted) and reports
// whether it came true; the caller checks its other outcomes first, so that
// a bridge too slow to count the flood still shows what the flood did.
func counted(cond func() bool) bool {
	deadline := time.Now().Add(floodWait)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// rejected is the bridge's count of rejected commands for a door label and
// reason.
func (h *harness) rejected(door, reason string) float64 {
	return testutil.ToFloat64(h.b.m.commandsRejected.WithLabelValues(door, reason))
}

// Commands to made-up doors add no metric series: the door label comes
// only from configured names (issue 12, item 4).
func TestJunkDoorsAddNoMetricSeries(t *testing.T) {
	n := floodN
	if v, err := strconv.Atoi(os.Getenv("DOORBRIDGE_TEST_FLOOD")); err == nil && v > 0 {
		n = v // a measurement: DOORBRIDGE_TEST_FLOOD=20000 -v logs the figures
	}
	h, _, _ := floodHarness(t, nil)
	h.ready()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h.flood(n, func(i int) (string, string) { return fmt.Sprintf("db/t1/junk%d/set", i), "UNLOCK" })
	ok := counted(func() bool { return h.rejected(unknownDoorLabel, "unknown_door") == float64(n) })
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(h.b.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	t.Logf("%d junk commands: heap in use %d → %d kB (test process, broker included), /metrics %d bytes",
		n, before.HeapInuse/1000, after.HeapInuse/1000, rec.Body.Len())
	families, err := h.b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "doorbridge_") {
			continue
		}
		for _, m := range f.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "junk") {
					t.Fatalf("%s has a series for a made-up door: %v", f.GetName(), m.GetLabel())
				}
			}
		}
	}
	if series > 200 {
		t.Fatalf("%d doorbridge_ series after %d junk commands: not bounded by the config", series, n)
	}
	if !ok {
		t.Fatalf("%v of %d commands to unknown doors counted under %q", h.rejected(unknownDoorLabel, "unknown_door"), n, unknownDoorLabel)
	}
}

// A flood of rejected commands costs counting, not output: a bounded
// number of log lines, audit records and error messages, however many
// there were (issue 12, item 5). Every one is counted.
func TestRejectedFloodIsCheap(t *testing.T) {
	h, logs, path := floodHarness(t, nil)
	h.ready()
	h.flood(floodN, func(i int) (string, string) {
		if i%2 == 0 {
			return "db/t1/fsec/set", "PLEASE"
		}
		return fmt.Sprintf("db/t1/junk%d/set", i), "UNLOCK"
	})
	ok := counted(func() bool {
		return h.rejected("fsec", "unknown_command") == floodN/2 && h.rejected(unknownDoorLabel, "unknown_door") == floodN/2
	})
	h.c.Sync(wait)
	h.stop()
	if !ok {
		t.Errorf("rejected commands counted: fsec %v, unknown doors %v; want %d each",
			h.rejected("fsec", "unknown_command"), h.rejected(unknownDoorLabel, "unknown_door"), floodN/2)
	}

	// Per door label and minute: 10 in full and a summary; a flood that
	// straddles a minute may take two.
	const bound = 2 * (10 + 1) * 2
	if n := strings.Count(logs.String(), `msg="command rejected"`); n > bound {
		t.Errorf("%d log lines for %d rejected commands, want at most %d", n, floodN, bound)
	}
	if n := len(h.c.Messages("db/t1/fsec/error")) + len(h.c.Messages("db/t1/error")); n > bound {
		t.Errorf("%d error messages for %d rejected commands, want at most %d", n, floodN, bound)
	}
	rejects := 0
	if _, err := audit.ReadAll(path, func(_ string, e audit.Event) {
		if e.Kind == "command" && e.Outcome == "rejected" {
			rejects++
		}
	}); err != nil {
		t.Fatal(err)
	}
	if rejects > bound {
		t.Errorf("%d audit records for %d rejected commands, want at most %d", rejects, floodN, bound)
	}
}

// A flood of junk commands that would fill the audit files many times over
// does not rotate out the record of an earlier alarm (issue 12, item 6).
func TestCommandFloodKeepsAlarmRecord(t *testing.T) {
	h, _, path := floodHarness(t, func(c *config.Config) { c.Watchdog.AlarmLatch = false })
	h.ready()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "alarm releases the maglock")
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitPower("0", true, wait, "relocked after the alarm")
	h.flood(floodN, func(i int) (string, string) {
		return "db/t1/fsec/set", fmt.Sprintf(`{"action": "FLY", "pad": "%s"}`, strings.Repeat("x", 150))
	})
	ok := counted(func() bool { return h.rejected("fsec", "unknown_command") == floodN })
	h.stop()
	if !ok {
		t.Errorf("%v of %d junk commands counted", h.rejected("fsec", "unknown_command"), floodN)
	}
	var alarm, relay bool
	if _, err := audit.ReadAll(path, func(_ string, e audit.Event) {
		alarm = alarm || e.Kind == "alarm" && e.Outcome == "alarm"
		relay = relay || e.Kind == "relay" && e.Door == "fs" && e.Cause == "alarm"
	}); err != nil {
		t.Fatal(err)
	}
	if !alarm || !relay {
		t.Fatalf("after %d junk commands the audit trail lost the alarm (alarm record %v, its relay record %v)", floodN, alarm, relay)
	}
}
