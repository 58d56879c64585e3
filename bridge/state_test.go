package bridge

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/broker"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/statefile"
	"github.com/doorbridge/doorbridge/internal/testbroker"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// latchOnDisk reads the latch as the next start would.
func (b *Bridge) latchOnDisk() bool {
	on, _ := b.state.loadFlag(latchRecord, true)
	return on
}

// R23 (issue 11 item 4): with the default config (no state_dir in the file)
// and the embedded broker (the demo), the fire release latch survives a
// restart that also starts a fresh broker with nothing retained: an alarm
// OFF does not relock, only a RESET does.
func TestLatchSurvivesRestartWithFreshEmbeddedBroker(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", t.TempDir()) // the demo, run by hand
	stateDir, err := config.DefaultStateDir("t1", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	e1, err := broker.StartPlain("127.0.0.1:0", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := e1.Addr()
	h := &harness{t: t, cfg: testConfig("tcp://" + e1.Addr())}
	h.cfg.Bridge.StateDir = stateDir
	h.c = testbroker.Connect(t, "tcp://"+e1.Addr(), "watcher")
	h.start()
	h.ready()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.c.WaitPayload("db/t1/alarm/latched", "ON", wait)
	h.stop()
	h.c.Close()
	e1.Close() // the embedded broker goes with the process, retained messages and all

	e2, err := broker.StartPlain(addr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	h.c = testbroker.Connect(t, "tcp://"+e2.Addr(), "watcher2")
	h.c.Publish(h.alarmTopic(), "OFF", true) // the alarm is over; nobody reset
	h.start()
	testbroker.Eventually(t, wait, h.b.Ready, "restarted bridge ready")
	if !h.b.State().Latched {
		t.Fatalf("the latch was lost on restart (state_dir %s)", stateDir)
	}
	h.c.WaitPayload("db/t1/alarm/state", "OFF", wait)
	h.c.WaitPayload("db/t1/alarm/latched", "ON", wait)
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm", wait)
	if h.power("0") {
		t.Fatal("the restarted bridge powered a latched maglock")
	}
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	h.waitPower("0", true, wait, "relocks after RESET")
}

// A latch record that is anything but an intact "not latched" reads as
// latched (R23): empty, NUL-filled, garbage, truncated, the pre-R23 "0\n".
func TestDamagedLatchReadsLatched(t *testing.T) {
	clk := &fakeClock{t: testStart}
	for name, damage := range map[string]func([]byte) []byte{
		"empty":      func([]byte) []byte { return nil },
		"NUL-filled": func(b []byte) []byte { return make([]byte, len(b)) },
		"garbage":    func([]byte) []byte { return []byte("latched=no\n") },
		"truncated":  func(b []byte) []byte { return b[:len(b)-3] },
		"old format": func([]byte) []byte { return []byte("0\n") },
		"deleted":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := newTestLoop(t, withClock(clk), withStateDir(dir))
			if l.latched {
				t.Fatal("a new install starts latched")
			}
			path := filepath.Join(dir, latchRecord)
			intact, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("a new install wrote no latch record: %v", err)
			}
			if damage == nil {
				os.Remove(path)
			} else if err := os.WriteFile(path, damage(intact), 0o600); err != nil {
				t.Fatal(err)
			}
			if l2, _ := newTestLoop(t, withClock(clk), withStateDir(dir)); !l2.latched {
				t.Fatalf("a %s latch record read as not latched", name)
			}
		})
	}
}

// Lockdown survives a restart (R23; it used to end silently), and a
// damaged record reads as on: lockdown never blocks an egress release.
func TestLockdownSurvivesRestart(t *testing.T) {
	clk := &fakeClock{t: testStart}
	dir := t.TempDir()
	l, _ := newTestLoop(t, withClock(clk), withStateDir(dir))
	l.alarm("OFF")
	l.settle(clk)
	l.send(l.b.topics.LockdownSet, "ON", false)
	l.flushLater()
	if !l.lockdown {
		t.Fatal("lockdown not on")
	}
	l2, _ := newTestLoop(t, withClock(clk), withStateDir(dir))
	if !l2.lockdown {
		t.Fatal("lockdown ended on restart")
	}
	// Egress is unaffected: an alarm still releases the maglock.
	l2.alarm("ON")
	if fs := l2.b.byID["fs"]; fs.power {
		t.Fatal("an alarm did not release a maglock under a restored lockdown")
	}
	l2.onMessage(evMessage{topic: l.b.topics.AlarmReset, payload: []byte("RESET")})
	l2.onMessage(evMessage{topic: l.b.topics.LockdownSet, payload: []byte("OFF")})
	l2.flushLater()
	if l3, _ := newTestLoop(t, withClock(clk), withStateDir(dir)); l3.lockdown {
		t.Fatal("lockdown OFF did not survive a restart")
	}
	os.WriteFile(filepath.Join(dir, lockdownRecord), []byte{0, 0}, 0o600)
	if l4, _ := newTestLoop(t, withClock(clk), withStateDir(dir)); !l4.lockdown {
		t.Fatal("a damaged lockdown record read as off")
	}
}

// The 10-minute battery budget of power_release: false (R8) counts every
// minute on battery: neither a restart nor a short return of mains gives a
// new 10 minutes. Mains back and stable for mainsStable fill it again.
func TestBatteryBudgetSurvivesRestartAndFlap(t *testing.T) {
	hold := false
	holdOnBattery := func(c *config.Config) { c.Doors[0].PowerRelease = &hold }
	held := func(l *loop) bool { return !l.doorHazards(l.b.byID["fs"], l.now()).Any() }
	// started is a bridge started on dir whose alarm is clear; mains not
	// reported yet.
	started := func(t *testing.T, clk *fakeClock, dir string) *loop {
		l, _ := newTestLoop(t, withClock(clk), withStateDir(dir), withConfig(holdOnBattery))
		l.alarm("OFF")
		l.settle(clk)
		return l
	}
	// power reports mains, on a link just proven (the fake clock jumps
	// minutes; only the power hazard is under test).
	power := func(l *loop, lost bool) {
		l.link()
		l.onPower(evPower{source: "ups", lost: lost})
	}
	start := time.Unix(1_800_000_000, 0)

	t.Run("restart", func(t *testing.T) {
		clk := &fakeClock{t: start}
		dir := t.TempDir()
		l := started(t, clk, dir)
		power(l, true)
		l.flushLater()
		clk.t = clk.t.Add(6 * time.Minute)
		l2 := started(t, clk, dir) // restarted during the outage
		power(l2, true)
		if !held(l2) {
			t.Fatal("released at once after a restart 6 minutes into the outage")
		}
		clk.t = clk.t.Add(4 * time.Minute)
		if held(l2) {
			t.Fatal("still held 10 minutes into the outage: the restart gave a new budget")
		}
	})
	t.Run("flap", func(t *testing.T) {
		clk := &fakeClock{t: start}
		l := started(t, clk, t.TempDir())
		power(l, true)
		clk.t = clk.t.Add(6 * time.Minute)
		power(l, false)
		clk.t = clk.t.Add(10 * time.Second)
		power(l, true)
		clk.t = clk.t.Add(4*time.Minute - time.Second)
		if !held(l) {
			t.Fatal("released before 10 minutes on battery in all")
		}
		clk.t = clk.t.Add(time.Second)
		if held(l) {
			t.Fatal("still held after 10 minutes on battery in all: the flap gave a new budget")
		}
	})
	t.Run("stable mains refill it", func(t *testing.T) {
		clk := &fakeClock{t: start}
		dir := t.TempDir()
		l := started(t, clk, dir)
		power(l, true)
		clk.t = clk.t.Add(9 * time.Minute)
		power(l, false)
		l.flushLater()
		clk.t = clk.t.Add(mainsStable)
		l2 := started(t, clk, dir)
		power(l2, true)
		clk.t = clk.t.Add(9 * time.Minute)
		if !held(l2) {
			t.Fatal("mains back and stable for an hour did not refill the budget")
		}
	})
	t.Run("clock went back", func(t *testing.T) {
		clk := &fakeClock{t: start}
		dir := t.TempDir()
		l := started(t, clk, dir)
		power(l, true)
		l.flushLater()
		clk.t = start.Add(-time.Hour) // restarted on a board without a real-time clock
		l2 := started(t, clk, dir)
		power(l2, true)
		if held(l2) {
			t.Fatal("a clock an hour behind the outage's start gave a full budget")
		}
	})
	t.Run("damaged reads spent", func(t *testing.T) {
		clk := &fakeClock{t: start}
		dir := t.TempDir()
		l := started(t, clk, dir)
		power(l, false)
		l.flushLater()
		os.WriteFile(filepath.Join(dir, batteryRecord), []byte("{"), 0o600)
		l2 := started(t, clk, dir)
		power(l2, true)
		if held(l2) {
			t.Fatal("a damaged battery record gave a full budget")
		}
	})
}

// A state directory on tmpfs is said loudly: it does not survive a power cut.
func TestVolatileStateDir(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "doorbridge-state-")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(dir)
	if !volatileFS(dir) {
		t.Errorf("%s (tmpfs) not seen as volatile", dir)
	}
}

// A state directory that cannot be used does not stop the bridge, and
// nothing in it can be trusted: latched, lockdown on (R23).
func TestUnusableStateDirReadsSafe(t *testing.T) {
	clk := &fakeClock{t: testStart}
	notADir := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, _ := newTestLoop(t, withClock(clk), withStateDir(notADir))
	if !l.latched || !l.lockdown {
		t.Fatalf("unusable state_dir: latched %v, lockdown %v; want both", l.latched, l.lockdown)
	}
}

// Regression test for the safety review's M2 (flushSaves dropped a record
// after one failed Save): a latch record that cannot be written (an SD
// card's ext4 remounted read-only after an I/O error, ENOSPC, EIO; here:
// the record made immutable so the rename over it fails) was logged once
// and never tried again, and the intact "not latched" record left on disk
// read as not latched after the restart: the latch was lost (R4, R23). Now
// it stays queued and is retried every tick, counted in
// doorbridge_state_unsaved_records.
func TestFailedLatchWriteIsRetriedAndNotLostOnRestart(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("needs chattr")
	}
	clk := &fakeClock{t: testStart}
	dir := t.TempDir()
	rec := filepath.Join(dir, latchRecord)
	l, _ := newTestLoop(t, withClock(clk), withStateDir(dir))
	l.alarm("OFF")
	l.settle(clk)
	if out, err := exec.Command("chattr", "+i", rec).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", rec).Run() })
	l.alarm("ON")
	l.flushLater() // the save fails
	if n := testutil.ToFloat64(l.b.m.stateUnsaved); n != 1 {
		t.Fatalf("doorbridge_state_unsaved_records = %v after the failed save, want 1", n)
	}
	for range 10 { // the loop goes on ticking; the disk comes back
		clk.t = clk.t.Add(time.Second)
		l.evaluate("test")
		l.flushLater()
		exec.Command("chattr", "-i", rec).Run()
	}
	if !l.latched {
		t.Fatal("not latched")
	}
	if l2, _ := newTestLoop(t, withClock(clk), withStateDir(dir)); !l2.latched {
		t.Fatal("the latch was lost on restart: its failed write was never retried, and the stale intact \"0\" reads as not latched")
	}
	if n := testutil.ToFloat64(l.b.m.stateUnsaved); n != 0 {
		t.Fatalf("doorbridge_state_unsaved_records = %v once the save worked, want 0", n)
	}
}

// Regression test for the safety review's M6: nothing stopped two bridges
// from sharing one state_dir (two containers on one volume, a bridge run
// by hand beside the service), and each overwrote the other's records:
// B's RESET cleared A's fire latch on disk. The second now refuses to
// start, naming the directory; once the first is gone it starts.
func TestSecondBridgeOnAStateDirRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Bridge, error) {
		cfg := testConfig("tcp://127.0.0.1:1")
		cfg.Bridge.StateDir = dir
		return Open(cfg, Options{Log: testLogger(t), Version: "test",
			Drivers: map[string]drivers.Driver{"sim": sim.New(sim.Options{})}})
	}
	a, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := open(); err == nil {
		b.Close()
		a.Close()
		t.Fatal("a second bridge started on a state_dir another bridge holds")
	} else if !strings.Contains(err.Error(), dir) || !errors.Is(err, errStateDirInUse) {
		t.Fatalf("error %q: want it to name the state_dir %s and say it is in use", err, dir)
	}
	a.Close()
	b, err := open()
	if err != nil {
		t.Fatalf("once the first bridge is gone: %v", err)
	}
	b.Close()
}

// oldLoadLatch is the latch as the releases before R23 read it (43e9a8a
// bridge/alarm.go:317-331): exactly "1" is latched, anything else is not.
func oldLoadLatch(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, legacyLatchRecord))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data)) == "1"
}

// Regression test for the safety review's M5: the checksummed latch record
// kept the old release's file name (alarm_latched) with a new format, and a
// latched bridge rolled back to the previous release read it as not
// latched. alarm_latched now keeps the old format, written with every
// change: a rollback reads the latch, and its reset.
func TestLatchSurvivesARollback(t *testing.T) {
	clk := &fakeClock{t: testStart}
	dir := t.TempDir()
	l, _ := newTestLoop(t, withClock(clk), withStateDir(dir))
	l.alarm("ON")
	l.flushLater()
	if !l.latched {
		t.Fatal("not latched")
	}
	if !oldLoadLatch(t, dir) {
		t.Fatal("the previous release reads the latch as not latched")
	}
	l.alarm("OFF")
	l.send(l.b.topics.AlarmReset, "RESET", false)
	l.flushLater()
	if l.latched || oldLoadLatch(t, dir) {
		t.Fatalf("reset: latched %v, the previous release reads latched %v; want neither", l.latched, oldLoadLatch(t, dir))
	}
}

// The first start of this release takes the latch from alarm_latched, in
// either earlier format: an intact checksummed "0" is not latched, the
// checksummed "1", the plain "1" and the plain "0" (no checksum: it cannot
// be told from damage) are latched.
func TestLatchUpgradeFromAlarmLatched(t *testing.T) {
	clk := &fakeClock{t: testStart}
	for name, c := range map[string]struct {
		write   func(dir string) error
		latched bool
	}{
		"checksummed 0": {func(dir string) error { return writeRecord(dir, legacyLatchRecord, "0") }, false},
		"checksummed 1": {func(dir string) error { return writeRecord(dir, legacyLatchRecord, "1") }, true},
		"plain 1": {func(dir string) error {
			return os.WriteFile(filepath.Join(dir, legacyLatchRecord), []byte("1\n"), 0o600)
		}, true},
		"plain 0": {func(dir string) error {
			return os.WriteFile(filepath.Join(dir, legacyLatchRecord), []byte("0\n"), 0o600)
		}, true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := c.write(dir); err != nil {
				t.Fatal(err)
			}
			l, _ := newTestLoop(t, withClock(clk), withStateDir(dir))
			if l.latched != c.latched {
				t.Fatalf("latched %v, want %v", l.latched, c.latched)
			}
			l.flushLater()
			if oldLoadLatch(t, dir) != c.latched {
				t.Fatalf("alarm_latched not rewritten for a rollback: reads latched %v", !c.latched)
			}
			if l2, _ := newTestLoop(t, withClock(clk), withStateDir(dir)); l2.latched != c.latched {
				t.Fatalf("after a second restart: latched %v, want %v", l2.latched, c.latched)
			}
		})
	}
}

// writeRecord writes a checksummed record as statefile does.
func writeRecord(dir, name, value string) error {
	d, err := statefile.Open(dir)
	if err != nil {
		return err
	}
	return d.Write(name, []byte(value))
}

// Regression test for the safety review's m5: the latch save waited while
// a release was being written (up to twice writeDeadline, or for good in
// the loop's eyes while a write hangs): a power cut then found no latch.
// The relays of the release are requested first; the latch is on disk
// right after, while a write still hangs.
func TestLatchSavedWhileTheReleaseIsWritten(t *testing.T) {
	l, clk := newTestLoop(t, withStateDir(t.TempDir()))
	l.alarm("OFF")
	l.settle(clk)
	l.afterEvent()
	if !l.b.byID["fs"].power {
		t.Fatal("the maglock is not powered before the alarm")
	}
	s := l.b.drivers["sim"].Opened().(*sim.Driver)
	s.SetFault("0", sim.Fault{Hang: true}) // the maglock's release write hangs
	t.Cleanup(func() { s.ClearFault("0") })
	l.send(l.b.cfg.Alarms[0].Topic, "ON", true) // no waitRelays: it hangs
	if l.release == nil {
		t.Fatal("no release pending while its write hangs")
	}
	l.afterEvent()
	if !l.b.latchOnDisk() {
		t.Fatal("the latch is not on disk while the release is being written")
	}
}

// Regression test for the safety review's m2: after a restart during an
// outage the budget was counted on the wall clock alone, and a clock that
// went back by less than the outage so far was not noticed: the hold of
// power_release: false lasted 10 minutes plus the step (R8: at most 10 min
// on battery). Now the record keeps the boot clock (which no step moves)
// at the outage's start; a restart in the same boot whose wall clock
// counts less than the boot clock takes the budget as spent. (A restart
// in another boot still has only the wall clock.)
func TestBatteryBudgetClockBackAfterRestart(t *testing.T) {
	up := time.Hour // the boot clock: time since boot
	real := bootClock
	bootClock = func() (string, time.Duration, bool) { return "boot-1", up, true }
	t.Cleanup(func() { bootClock = real })
	hold := false
	start := time.Unix(1_800_000_000, 0)
	clk := &fakeClock{t: start}
	dir := t.TempDir()
	mk := func() *loop {
		l, _ := newTestLoop(t, withClock(clk), withStateDir(dir), withConfig(func(c *config.Config) { c.Doors[0].PowerRelease = &hold }))
		l.alarm("OFF")
		l.settle(clk)
		l.link()
		l.onPower(evPower{source: "ups", lost: true})
		l.flushLater()
		return l
	}
	mk()
	// 6 minutes on battery; the bridge restarts, and its clock now reads 5
	// minutes behind (stepped back by NTP, or a board without an RTC).
	clk.t = start.Add(6*time.Minute - 5*time.Minute)
	up += 6 * time.Minute
	l2 := mk()
	clk.t = clk.t.Add(4*time.Minute + time.Second) // 10 min 1 s on battery in real time
	if !l2.doorHazards(l2.b.byID["fs"], l2.now()).Any() {
		t.Fatal("R8: still held after 10 min on battery: a clock 5 minutes back after the restart extended the hold")
	}
}
