package bridge

import (
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
)

// loopBridge opens a bridge on sim relays with a fake clock and returns its
// loop, linked (connected, subscribed, heartbeat just in) but not running:
// the test calls the loop's handlers itself.
func loopBridge(t *testing.T, clk *fakeClock, mutate func(*config.Config)) *loop {
	t.Helper()
	cfg := testConfig("tcp://127.0.0.1:1")
	cfg.Watchdog.AlarmLatch = false
	if mutate != nil {
		mutate(cfg)
	}
	b, err := Open(cfg, Options{Log: testLogger(t), Clock: clk, Version: "test",
		Drivers: map[string]drivers.Driver{"sim": sim.New(sim.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(b)
	l.link()
	return l
}

// link marks the broker link as up and just proven.
func (l *loop) link() {
	l.connected, l.subscribed, l.hbRecvAt = true, true, l.now()
}

// alarm hands the loop an alarm message, as MQTT would.
func (l *loop) alarm(payload string) {
	l.link()
	l.onMessage(evMessage{topic: l.b.cfg.Alarms[0].Topic, payload: []byte(payload), retained: true})
}

// settle lets relock_delay pass with the link healthy, so that cleared
// hazards stop holding the doors.
func (l *loop) settle(clk *fakeClock) {
	clk.t = clk.t.Add(l.b.cfg.Watchdog.RelockDelay)
	l.link()
	l.evaluate()
}

func scrape(t *testing.T, b *Bridge) string {
	t.Helper()
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, body)
	}
	return string(body)
}

// Every metric the README and the Grafana dashboard name is served, with
// the labels they use.
func TestMetricsScrape(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := loopBridge(t, clk, nil)
	l.alarm("OFF")
	l.settle(clk)
	if !l.b.byID["fs"].power {
		t.Fatal("fail-safe door not locked after the alarm cleared")
	}
	// A stale command, a retained one and one for a door that does not exist.
	l.onMessage(evMessage{topic: "db/t1/fsec/set", payload: []byte(`{"action": "UNLOCK", "ts": 1}`)})
	l.onMessage(evMessage{topic: "db/t1/fsec/set", payload: []byte("UNLOCK"), retained: true})
	l.onMessage(evMessage{topic: "db/t1/attic/set", payload: []byte("UNLOCK")})
	l.onMessage(evMessage{topic: "db/t1/fsec/set", payload: []byte("UNLOCK")})

	clk.t = clk.t.Add(90 * time.Second)
	l.alarm("ON")
	clk.t = clk.t.Add(42 * time.Second)
	l.alarm("OFF")
	l.settle(clk)

	body := scrape(t, l.b)
	for _, want := range []string{
		`doorbridge_build_info{goversion="` + runtime.Version() + `",version="test"} 1`,
		`doorbridge_commands_total{door="fsec",result="accepted"} 1`,
		`doorbridge_commands_total{door="fsec",result="rejected"} 1`,
		`doorbridge_commands_total{door="fsec",result="ignored"} 1`,
		`doorbridge_commands_rejected_total{door="fsec",reason="stale"} 1`,
		`doorbridge_commands_rejected_total{door="fsec",reason="retained"} 1`,
		`doorbridge_commands_rejected_total{door="(unknown)",reason="unknown_door"} 1`,
		`doorbridge_commands_rejected_total{door="fs",reason="code"} 0`,
		`doorbridge_commands_rejected_total{door="lockdown",reason="hazard"} 0`,
		`doorbridge_hazard_duration_seconds_bucket{hazard="alarm",le="30"} 0`,
		`doorbridge_hazard_duration_seconds_bucket{hazard="alarm",le="60"} 1`,
		`doorbridge_hazard_duration_seconds_count{hazard="broker"} 0`,
		`doorbridge_hazard_release_seconds_count 1`,
		`doorbridge_hazard_release_seconds_bucket{le="1"} 1`,
		`doorbridge_hazard_active{hazard="alarm"} 0`,
		`doorbridge_watchdog_trips_total{hazard="alarm"} 1`,
		`doorbridge_heartbeat_rtt_seconds_bucket{le="0.001"} 0`,
		`doorbridge_mqtt_connects_total 0`,
		`doorbridge_mqtt_connected 1`,
		`doorbridge_lock_energized{door="fs"} 1`,
		`doorbridge_door_locked{door="fsec"} 0`,
		`doorbridge_relay_writes_total{door="fs"} 4`, // off at start, locked, released, relocked
		`doorbridge_audit_file_dropped_total 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if rejected := grepLines(body, "doorbridge_commands_rejected_total{"); strings.Contains(rejected, "attic") {
		t.Errorf("a command for an unknown door added a series with its id:\n%s", rejected)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(body, "doorbridge_"))
	}
}

// The startup hazard is active, and timed, from the first evaluation: its
// duration is the time from start to the first proven link.
func TestStartupHazardTimed(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	cfg := testConfig("tcp://127.0.0.1:1")
	b, err := Open(cfg, Options{Log: testLogger(t), Clock: clk, Drivers: map[string]drivers.Driver{"sim": sim.New(sim.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(b)
	l.evaluate()
	if got := testutil.ToFloat64(b.m.hazardActive.WithLabelValues("startup")); got != 1 {
		t.Fatalf("hazard_active{startup} = %v after the first evaluation, want 1", got)
	}
	clk.t = clk.t.Add(3 * time.Second)
	l.alarm("OFF")
	l.settle(clk)
	if n := testutil.CollectAndCount(b.m.hazardDuration); n != int(numHazards) {
		t.Fatalf("hazard_duration has %d series, want one per hazard", n)
	}
	h := testutil.ToFloat64(b.m.hazardActive.WithLabelValues("startup"))
	body := scrape(t, b)
	if h != 0 || !strings.Contains(body, `doorbridge_hazard_duration_seconds_sum{hazard="startup"} 3`+"\n") {
		t.Fatalf("startup hazard active=%v; durations:\n%s", h, grepLines(body, "hazard_duration_seconds_sum"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
