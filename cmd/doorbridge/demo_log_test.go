package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// The demo through a start, a clear, an alarm, a clear and a reset logs
// each event once (not as a message and again as an audit line) and at the
// right level: nothing at ERROR, and WARN only for the alarm itself and
// for the two warnings the demo earns on purpose (a broker without logins,
// a release drill never done).
func TestDemoLogsEachEventOnce(t *testing.T) {
	// relock_delay keeps the two clears and the two relocks of the same
	// source over a second apart: repeats of one event closer than
	// dupWindow are the same event logged twice.
	cfgPath, broker := demoConfig(t, [2]string{"relock_delay: 5s", "relock_delay: 1s"})
	p := startBridge(t, cfgPath)
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect("tcp://"+broker, "probe", testbroker.ClientOptions{}) == nil
	}, "the demo's broker did not come up")
	c := testbroker.Connect(t, "tcp://"+broker, "watcher")
	c.WaitPayload("doorbridge/demo/availability", "online", wait)
	alarm := func(args ...string) {
		t.Helper()
		if b, err := quickCommand(append([]string{"alarm"}, append(args, "-c", cfgPath)...)...).CombinedOutput(); err != nil {
			t.Fatalf("alarm %v: %v\n%s", args, err, b)
		}
	}
	alarm("off")
	c.WaitPayload("doorbridge/demo/front/state", "LOCKED", 2*wait)
	alarm("on")
	c.WaitPayload("doorbridge/demo/front/state", "UNLOCKED", wait)
	alarm("off")
	c.WaitPayload("doorbridge/demo/alarm/state", "OFF", wait)
	alarm("reset")
	c.WaitPayload("doorbridge/demo/front/state", "LOCKED", 2*wait)
	p.stop(t, syscall.SIGTERM)
	out := p.output()

	for _, l := range logLines(out) {
		if l.attrs["level"] == "ERROR" || (l.attrs["level"] == "WARN" && !expectedWarning(l)) {
			t.Errorf("a normal event logged at %s: %s", l.attrs["level"], l.text)
		}
	}
	for _, l := range logLines(out) {
		if len(l.repeated) > 0 {
			t.Errorf("a line repeats %v: %s", l.repeated, l.text)
		}
	}
	for _, d := range duplicateEvents(logLines(out)) {
		t.Errorf("one event logged twice:\n  %s\n  %s", d[0], d[1])
	}
}

// dupWindow: two lines for the same event closer than this are one event
// logged twice (the steps of the test are further apart).
const dupWindow = 250 * time.Millisecond

// expectedWarning: the alarm (the source, the latch, the hazard), and the
// demo's two warnings by design.
func expectedWarning(l logLine) bool {
	a := l.attrs
	switch a["msg"] {
	case "alarm source changed":
		return a["to"] == "alarm"
	case "fire release latch":
		return a["latched"] == "true"
	case "hazard raised":
		return a["hazard"] == "alarm" && strings.HasPrefix(a["origin"], "alarm:")
	}
	return strings.HasPrefix(a["msg"], "embedded_broker has no users") || strings.HasPrefix(a["msg"], "release drill overdue")
}

type logLine struct {
	text     string
	time     time.Time
	attrs    map[string]string // the first value of each key
	repeated []string          // keys given twice (two scopes adding the same attribute)
}

// logLines parses slog's text lines (key=value, values quoted when they
// hold spaces); other lines are left out.
func logLines(out string) []logLine {
	var lines []logLine
	for _, text := range strings.Split(out, "\n") {
		attrs := map[string]string{}
		var repeated []string
		rest := text
		for rest != "" {
			key, after, ok := strings.Cut(rest, "=")
			if !ok || strings.Contains(key, " ") {
				break
			}
			val := after
			if q, err := strconv.QuotedPrefix(after); err == nil {
				val, _ = strconv.Unquote(q)
				after = after[len(q):]
			} else {
				val, after, _ = strings.Cut(after, " ")
				after = " " + after
			}
			if _, dup := attrs[key]; dup {
				repeated = append(repeated, key)
			} else {
				attrs[key] = val
			}
			rest = strings.TrimPrefix(after, " ")
		}
		ts, err := time.Parse(time.RFC3339Nano, attrs["time"])
		if err != nil || attrs["msg"] == "" {
			continue
		}
		lines = append(lines, logLine{text: text, time: ts, attrs: attrs, repeated: repeated})
	}
	return lines
}

// eventOf names the event a line reports, the same for the bridge's own
// message and the audit record of that event ("" for lines that report
// none).
func eventOf(l logLine) string {
	a := l.attrs
	switch a["msg"] {
	case "audit":
		topic := strings.TrimPrefix(a["origin"], "mqtt:")
		switch a["kind"] {
		case "alarm":
			return "alarm " + a["outcome"] + " " + topic
		case "latch", "drill":
			return a["kind"] + " " + a["outcome"]
		}
		return strings.Join([]string{a["kind"], a["outcome"], a["door"], a["hazard"]}, " ")
	case "hazard raised":
		return "hazard raised  " + a["hazard"]
	case "hazard cleared":
		return "hazard cleared  " + a["hazard"]
	case "alarm source changed":
		return "alarm " + a["to"] + " " + a["topic"]
	case "MQTT broker accepted the connection", "MQTT connected":
		return "mqtt connected " + a["gen"]
	case "fire release latch":
		return "latch " + map[string]string{"true": "ON", "false": "OFF"}[a["latched"]]
	}
	if strings.HasPrefix(a["msg"], "release drill:") {
		return "drill released"
	}
	return ""
}

// duplicateEvents returns the pairs of lines that report one event within
// dupWindow of each other.
func duplicateEvents(lines []logLine) [][2]string {
	var dups [][2]string
	last := map[string]logLine{}
	for _, l := range lines {
		ev := eventOf(l)
		if ev == "" {
			continue
		}
		if prev, ok := last[ev]; ok && l.time.Sub(prev.time) < dupWindow {
			dups = append(dups, [2]string{prev.text, l.text})
		}
		last[ev] = l
	}
	return dups
}
