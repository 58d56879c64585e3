package bridge

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers/sim"
)

// alarmValue is what an alarm source last said.
type alarmValue uint8

const (
	alarmUnknown alarmValue = iota // no value yet: counts as alarm (R5)
	alarmOn
	alarmOff
)

func (v alarmValue) String() string {
	switch v {
	case alarmOn:
		return "alarm"
	case alarmOff:
		return "clear"
	}
	return "unknown"
}

// alarmSource is one configured alarm topic and its last value.
type alarmSource struct {
	cfg   config.Alarm
	value alarmValue
}

// active reports whether the source counts as alarm: anything but an explicit
// clear. A typo in an alarm topic shows up at installation as doors that
// won't lock, never as doors that won't release in a fire.
func (a *alarmSource) active() bool { return a.value != alarmOff }

// classify maps a payload to a value. known is false for a payload that is
// neither the on nor the off value: it counts as alarm. An empty payload (a
// cleared retained message) means "no value": unknown, which is also alarm.
func (a *alarmSource) classify(p []byte) (v alarmValue, known bool) {
	switch string(p) {
	case a.cfg.PayloadOff:
		return alarmOff, true
	case a.cfg.PayloadOn:
		return alarmOn, true
	case "":
		return alarmUnknown, true
	}
	return alarmOn, false
}

const latchFile = "alarm_latched"

// loadLatch reads the fire release latch kept on disk (bridge.state_dir).
func (b *Bridge) loadLatch() bool {
	if b.cfg.Bridge.StateDir == "" {
		return false
	}
	data, err := os.ReadFile(filepath.Join(b.cfg.Bridge.StateDir, latchFile))
	if err != nil {
		if !os.IsNotExist(err) {
			// Unreadable state: assume the worst, the latch was set.
			b.log.Error("cannot read latch state; assuming latched", "err", err)
			return true
		}
		return false
	}
	return strings.TrimSpace(string(data)) == "1"
}

// saveLatch keeps the latch on disk when bridge.state_dir is set. It is also
// kept retained on the broker (B/N/alarm/latched).
func (b *Bridge) saveLatch(on bool) {
	if b.cfg.Bridge.StateDir == "" {
		return
	}
	v := "0\n"
	if on {
		v = "1\n"
	}
	if err := sim.WriteFileAtomic(filepath.Join(b.cfg.Bridge.StateDir, latchFile), []byte(v)); err != nil {
		b.log.Error("cannot save latch state", "err", err)
	}
}
