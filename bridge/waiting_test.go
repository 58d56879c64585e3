package bridge

import (
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// The start-up line says what keeps the fail-safe doors released: a plain
// source that has not said OFF, and a wildcard source short of the
// detectors it expects (issue 15: a new installation whose doors will not
// lock reads why in one line).
func TestWaitingLineNamesEachSource(t *testing.T) {
	z := jsonAlarm("smoke", true, false)
	z.Topic, z.Expect = "zigbee2mqtt/+", 3
	logs := &logSink{}
	l, _ := newTestLoop(t, withAlarms(config.DefaultAlarm("db"), z), withLog(slogTo(logs)), evaluated())
	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	l.flushLater()
	l.logWaiting()
	l.flushLater()
	want := `fail-safe door released until: db/alarm says OFF (now: unknown); zigbee2mqtt/+: 1 of 3 expected sources reported`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the waiting line lacks %q:\n%s", want, logs.String())
	}
}
