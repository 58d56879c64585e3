package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// apiDoors reads /api/v1/doors as a client does.
func (h *harness) apiDoors() map[string]DoorView {
	h.t.Helper()
	body := apiDoorsJSON(h.t, h.b)
	var doors []DoorView
	if err := json.Unmarshal(body, &doors); err != nil {
		h.t.Fatalf("/api/v1/doors: %v\n%s", err, body)
	}
	out := map[string]DoorView{}
	for _, d := range doors {
		out[d.ID] = d
	}
	return out
}

// /api/v1/doors says when an unlocked door locks again by itself: the end
// of a momentary OPEN, the end of relock_delay after an alarm cleared; and
// that the fire release latch holds the doors (no relock time then).
func TestAPIDoorsShowsRelockTimeAndLatch(t *testing.T) {
	// Long: the hold and the OPEN still run when the API is read.
	const delay = 10 * time.Second
	h := newHarness(t, func(c *config.Config) {
		c.Watchdog.RelockDelay, c.Doors[1].UnlockTime, c.Watchdog.AlarmLatch = delay, delay, false
		// The shipped timings: 2×500 ms without a heartbeat echo on a
		// loaded machine dropped the link, and the OPEN sent meanwhile
		// was lost.
		c.Watchdog.HeartbeatInterval, c.Watchdog.HeartbeatTimeout = time.Second, 3*time.Second
	})
	h.c.Publish(h.alarmTopic(), "OFF", true)
	// relock_delay also holds the doors after start-up: wait it out once.
	testbroker.Eventually(t, delay+wait, func() bool { return h.power("0") }, "the fail-safe door locks after relock_delay")

	h.c.Publish(h.topic("fsec", "set"), "OPEN", false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateOpen, wait)
	d := h.apiDoors()["fsec"]
	if d.RelockAt == nil || d.RelockInS == nil || *d.RelockInS < 0 || *d.RelockInS > h.cfg.Doors[1].UnlockTime.Seconds() {
		t.Errorf("fsec during a momentary OPEN: relock_at %v, relock_in_s %v; want at most unlock_time", d.RelockAt, d.RelockInS)
	}
	if d := h.apiDoors()["fs"]; d.RelockAt != nil || d.AlarmLatched {
		t.Errorf("locked fs: relock_at %v, alarm_latched %v", d.RelockAt, d.AlarmLatched)
	}

	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "the alarm releases the fail-safe door")
	h.c.Publish(h.alarmTopic(), "OFF", true)
	testbroker.Eventually(t, wait, func() bool { return h.apiDoors()["fs"].RelockAt != nil }, "fs shows when relock_delay ends: %+v", h.apiDoors())
	if d := h.apiDoors()["fs"]; *d.RelockInS <= 0 || *d.RelockInS > delay.Seconds() || d.AlarmLatched {
		t.Errorf("fs held after the alarm cleared: relock_in_s %v (relock_delay %v), alarm_latched %v", *d.RelockInS, delay, d.AlarmLatched)
	}
}

func TestAPIDoorsShowsLatch(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Watchdog.AlarmLatch = true })
	h.ready()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "the alarm releases the fail-safe door")
	h.c.Publish(h.alarmTopic(), "OFF", true)
	testbroker.Eventually(t, wait, func() bool { return h.apiDoors()["fs"].AlarmLatched }, "fs shows the latch")
	if d := h.apiDoors()["fs"]; d.RelockAt != nil {
		t.Errorf("latched fs: relock_at %v, want none (it waits for a reset)", d.RelockAt)
	}
}

// A door whose last command was UNLOCK unlocks again when the alarm is
// over (reset, relock_delay): a notice says so, since nobody commanded it
// just then.
func TestNoticeWhenADoorReturnsToItsUnlock(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateUnlocked, wait)
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.c.WaitPayload(h.topic("fsec", "state"), StateLocked, wait)
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateUnlocked, wait)
	h.c.WaitPayload("db/t1/notice", "Server room is unlocked again: the alarm is over and its last command was UNLOCK", wait)
}

// A notice cut to 250 bytes never ends in half a UTF-8 character.
func TestNoticePayloadCutsOnACharacter(t *testing.T) {
	for _, msg := range []string{"x" + strings.Repeat("é", 200), "xy" + strings.Repeat("€", 100), "short"} {
		p := noticePayload(msg)
		if len(p) > 250 || !utf8.ValidString(p) || !strings.HasPrefix(msg, p) {
			t.Errorf("noticePayload(%d bytes) = %d bytes, valid UTF-8 %v", len(msg), len(p), utf8.ValidString(p))
		}
	}
}

// The blueprint's trouble (a detector unavailable: an empty retained
// payload) releases the fail-safe doors without latching: they relock on
// OFF, with no reset.
func TestTroubleReleasesWithoutLatch(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Watchdog.AlarmLatch = true })
	h.ready()
	h.c.Publish(h.alarmTopic(), "", true)
	h.waitPower("0", false, wait, "trouble releases the fail-safe door")
	if h.apiDoors()["fs"].AlarmLatched {
		t.Fatal("trouble latched the release")
	}
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitPower("0", true, wait, "the door relocks on OFF without a reset")
}

// apiDoorsJSON is what /api/v1/doors serves (package httpapi encodes
// DoorViews, which imports bridge: its handler cannot be called from here).
func apiDoorsJSON(t *testing.T, b *Bridge) []byte {
	t.Helper()
	body, err := json.Marshal(b.DoorViews())
	if err != nil {
		t.Fatal(err)
	}
	return body
}
