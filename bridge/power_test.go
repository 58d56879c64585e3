package bridge

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/power/nuttest"
)

// A UPS on battery, read from a real upsd, releases fail-safe doors and
// holds fail-secure ones; mains back relocks after relock_delay.
func TestUPSOnBatteryViaNUT(t *testing.T) {
	if !nuttest.Available() {
		t.Skip("NUT's upsd is not installed (apt-get install nut-server); .ci/run installs it")
	}
	ups := nuttest.Start(t)
	ups.SetStatus(t, "OL")
	ups.WaitStatus(t, "OL", 15*time.Second)
	h := newHarness(t, func(c *config.Config) {
		c.Power = []config.PowerSource{{Type: config.PowerNUT, Name: "ups", Host: ups.Host(), Port: ups.Port(), UPS: ups.UPS(),
			PollInterval: 100 * time.Millisecond, Timeout: 3 * time.Second}}
	})
	h.ready()
	h.c.WaitPayload("db/t1/power/state", "ON", wait)
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.waitPower("1", true, wait, "strike unlocked")

	mark := h.c.Mark()
	ups.SetStatus(t, "OB")
	h.waitPower("0", false, 3*wait, "UPS on battery releases the maglock")
	h.waitPower("1", false, wait, "UPS on battery cuts the strike: locked")
	h.c.WaitForAfter(mark, "db/t1/power/state", wait, payloadIs("OFF"))
	h.c.WaitPayload(h.topic("fs", "cause"), "power", wait)

	seq := h.b.audit.seq.Load()
	ups.SetStatus(t, "OL")
	h.c.WaitForAfter(mark, "db/t1/power/state", 3*wait, payloadIs("ON"))
	h.c.WaitForAfter(mark, h.topic("fs", "state"), wait, payloadIs(StateLocked))
	// Timed by the bridge's own audit records (stamped when it decided),
	// not by two messages' arrival at the watcher: the first can reach the
	// test late on a busy machine while the second does not.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cleared, ok := h.b.audit.recent.wait(ctx, seq, func(e audit.Event) bool {
		return e.Kind == "hazard" && e.Hazard == "power" && e.Outcome == "cleared"
	})
	if !ok {
		t.Fatal("no record of the power hazard clearing")
	}
	locked, ok := h.b.audit.recent.wait(ctx, cleared.Seq, func(e audit.Event) bool {
		return e.Kind == "relay" && e.Door == "fs" && e.Outcome == "locked"
	})
	if !ok {
		t.Fatal("no record of the maglock's relock")
	}
	if d := locked.Time.Sub(cleared.Time); d < testRelockDelay-50*time.Millisecond {
		t.Fatalf("relocked %v after mains returned, before relock_delay", d)
	}
}

func TestSysfsPowerSource(t *testing.T) {
	dir := t.TempDir()
	online := filepath.Join(dir, "online")
	os.WriteFile(online, []byte("1\n"), 0o644)
	h := newHarness(t, func(c *config.Config) {
		c.Power = []config.PowerSource{{Type: config.PowerSysfs, Name: "psu", Path: dir,
			PollInterval: 50 * time.Millisecond, Timeout: time.Second}}
	})
	h.ready()
	os.WriteFile(online, []byte("0\n"), 0o644)
	h.waitPower("0", false, wait, "sysfs online=0 releases")
	os.WriteFile(online, []byte("1\n"), 0o644)
	h.waitPower("0", true, wait, "sysfs online=1 relocks")
}

func TestMQTTPowerSource(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		// The longest timeout: each reading holds only that long (R24), and
		// a loaded machine must not make this test about staleness.
		c.Power = []config.PowerSource{{Type: config.PowerMQTT, Name: "ha-ups", Topic: "ha/ups/mains",
			PayloadOK: "on", PayloadLost: "off", PollInterval: time.Second, Timeout: 10 * time.Second}}
	})
	h.c.Publish("ha/ups/mains", "on", true)
	h.ready()
	h.c.Publish("ha/ups/mains", "off", true)
	h.waitPower("0", false, wait, "mqtt power lost releases")
	h.c.Publish("ha/ups/mains", "on", true)
	h.waitPower("0", true, wait, "mqtt power back relocks")
	h.c.Publish("ha/ups/mains", "garbage", true)
	h.waitPower("0", false, wait, "an unexpected power payload counts as lost")
}

// A fail-safe door with power_release: false holds on battery for at most
// 10 minutes; every other hazard still releases it at once.
func TestPowerReleaseOffHoldsAtMostTenMinutes(t *testing.T) {
	hold := false
	l, clk := newTestLoop(t, withConfig(func(c *config.Config) { c.Doors[0].PowerRelease = &hold }))
	l.alarms[0].setPlain(alarmOff)
	l.evaluate("test")
	fs, fsec := l.b.byID["fs"], l.b.byID["fsec"]

	l.onPower(evPower{source: "ups", lost: true})
	if !l.effective.Has(HazardPower) {
		t.Fatalf("power hazard not raised")
	}
	if hz := l.doorHazards(fs, clk.t); hz.Any() {
		t.Fatalf("door with power_release false released at once: %v", hz)
	}
	if hz := l.doorHazards(fsec, clk.t); !hz.Has(HazardPower) {
		t.Fatalf("other doors must see the power hazard: %v", hz)
	}
	clk.t = clk.t.Add(config.MaxHoldOnBattery - time.Second)
	if hz := l.doorHazards(fs, clk.t); hz.Any() {
		t.Fatalf("released before 10 minutes on battery: %v", hz)
	}
	clk.t = clk.t.Add(time.Second)
	if hz := l.doorHazards(fs, clk.t); !hz.Has(HazardPower) {
		t.Fatalf("still held after 10 minutes on battery: %v", hz)
	}
	// An alarm during the hold releases at once.
	clk.t = clk.t.Add(-time.Minute)
	l.alarms[0].setPlain(alarmOn)
	l.evaluate("test")
	if hz := l.doorHazards(fs, clk.t); !hz.Has(HazardAlarm) {
		t.Fatalf("alarm did not release a door held on battery: %v", hz)
	}
}
