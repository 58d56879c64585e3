package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/doorbridge/doorbridge/internal/atomicfile"
	"github.com/doorbridge/doorbridge/internal/statefile"
)

// What must survive a restart and a power cut (R23) is kept in
// bridge.state_dir, one record per file (internal/statefile): written whole
// and fsynced, read back as the safe value unless intact. The broker's
// retained messages are a second copy where there is one (the latch, the
// last drill), never the only one: the embedded broker keeps nothing across
// a restart.
//
// Records and what a damaged one reads as:
//
//	fire_latch     "1"/"0"            latched (R4): only an intact "0" relocks
//	alarm_latched  "1\n"/"0\n", plain  the same latch, for a rollback (below)
//	lockdown       "1"/"0"            on (below)
//	battery        JSON batteryBudget the 10-minute budget spent (battery.go)
//	last_drill     RFC 3339 time      no drill known: a drill is due
//	discovery      JSON {topic: {component: platform}}, what the last start
//	               announced to Home Assistant  nothing known: what to remove
//	               from HA comes from the broker's retained payloads only
//
// alarm_latched is the latch in the format of the releases before R23
// (plain, no checksum; they read exactly "1" as latched and anything else,
// a missing file too, as not latched). It is written on every change so
// that a rollback keeps the latch: "1" before fire_latch when the latch
// sets, "0" after it when it is reset, so that a crash between the two
// leaves it latched. It is read only on the first start of this release
// (fire_latch never written): an intact checksummed "0" (written by the
// release that introduced the checksums under this name) or none at all
// is not latched, anything else, the old plain "0" too, is latched.
//
// Lockdown reads as on: it never blocks an egress release (Decide: every
// hazard outranks it, and so does a fail-safe door's REX; a fail-secure
// egress door has mechanical egress, R19), while a lockdown that silently
// ended would open doors someone meant to keep shut.
const (
	latchRecord       = "fire_latch"
	legacyLatchRecord = "alarm_latched"
	lockdownRecord    = "lockdown"
	batteryRecord     = "battery"
	drillRecord       = "last_drill"
	announcedRecord   = "discovery"
)

// stateStore is the bridge's state directory. Its methods are for the
// loop's goroutine (and Open, before the loop runs).
type stateStore struct {
	dir     *statefile.Dir // nil: nothing persists (a Config built in code, tests)
	log     *slog.Logger
	failing map[string]bool // records whose last write failed (logged once)
	lock    *os.File        // state_dir/.lock, flocked while the bridge runs
}

// openState opens bridge.state_dir. An empty one only comes from a Config
// built in code (config.Load always sets one): nothing then survives a
// restart, which is said loudly. A directory that cannot be used is not
// fatal: every record then reads as its safe value (latched), also loudly.
// A directory another bridge holds is fatal: two bridges on one state_dir
// overwrite each other's records (B's RESET clears A's fire latch).
func openState(dir string, log *slog.Logger) (*stateStore, error) {
	s := &stateStore{log: log}
	if dir == "" {
		log.Error("bridge.state_dir is empty: the fire release latch, lockdown and the battery budget will not survive a restart")
		return s, nil
	}
	d, err := statefile.Open(dir)
	lock, lockErr := lockStateDir(dir)
	switch {
	case errors.Is(lockErr, errStateDirInUse):
		return nil, lockErr
	case lockErr != nil && err == nil:
		log.Warn("bridge.state_dir cannot be locked: nothing stops a second bridge from sharing it", "state_dir", dir, "err", lockErr)
	}
	s.lock = lock
	if err != nil {
		log.Error("state directory unusable: state that cannot be read is taken as its safe value (latched, lockdown on, battery budget spent)",
			"state_dir", dir, "err", err)
	} else if volatileFS(dir) {
		log.Error("bridge.state_dir is on a file system a reboot empties (tmpfs): the fire release latch survives a restart, not a power cut; use a disk",
			"state_dir", dir)
	}
	s.dir = d
	return s, nil
}

var errStateDirInUse = errors.New("in use by another doorbridge")

// lockStateDir takes an exclusive flock on dir/.lock (statefile.Lock),
// held until unlock (the process's life: the kernel drops it when the
// process ends, however it ends). Only one held elsewhere is
// errStateDirInUse; a lock that cannot be taken for another reason (a file
// system without flock) is not fatal. test-door takes the same lock: a
// bridge started under it has written its relays off (first, as always)
// and stops here.
func lockStateDir(dir string) (*os.File, error) {
	f, err := statefile.Lock(dir, true)
	switch {
	case errors.Is(err, statefile.ErrLocked):
		return nil, fmt.Errorf("bridge.state_dir %s: %w (%v): two bridges must not share a state_dir, and test-door holds it while it runs; give each bridge its own", dir, errStateDirInUse, err)
	case err != nil:
		return nil, fmt.Errorf("bridge.state_dir %s: lock: %w", dir, err)
	}
	return f, nil
}

// unlock releases state_dir's lock (a bridge that is done, or a test's).
func (s *stateStore) unlock() {
	if s != nil && s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// Load returns record name: its value when intact, initial when it was
// never written, and safe in every other case (damaged, missing after it
// was written, unreadable, no usable directory), with the error that says
// why. The caller acts on the value and reports the error. Without a state
// directory it returns initial: nothing persists.
//
// This is the API for every record of bridge.state_dir (code lockouts
// too): choose safe as the value that is safe to act on when nothing is
// known, and Load at start, before the first Save.
func (s *stateStore) Load(name string, initial, safe []byte) ([]byte, error) {
	if s.dir == nil {
		return initial, nil
	}
	return s.dir.Load(name, initial, safe)
}

// Save writes record name durably: the file and the directory are fsynced
// before it returns. A failure is logged here (once until it works again);
// it is returned too. When the write fails the old record is removed if it
// can be: written once and now missing, it reads as its safe value on a
// restart, where the stale intact old value would read as itself (a latch
// set while the disk refused it would read as not latched).
func (s *stateStore) Save(name string, value []byte) error {
	if s.dir == nil {
		return nil
	}
	var err error
	if name == legacyLatchRecord {
		err = atomicfile.Write(filepath.Join(s.dir.Path(), name), append(slices.Clone(value), '\n'), 0o600)
	} else {
		err = s.dir.Write(name, value)
	}
	if err == nil {
		if s.failing[name] {
			delete(s.failing, name)
			s.log.Info("state saved again", "record", name)
		}
		return nil
	}
	rmErr := errors.New("not removed: a missing legacy latch reads as not latched")
	if name != legacyLatchRecord {
		rmErr = s.dir.Remove(name)
	}
	if !s.failing[name] {
		if s.failing == nil {
			s.failing = map[string]bool{}
		}
		s.failing[name] = true
		s.log.Error("cannot save state: it will not survive a restart; retried every tick", "record", name, "err", err, "old_record_removed", rmErr == nil, "remove_err", rmErr)
	}
	return err
}

// loadFlag loads a "1"/"0" record: anything but an intact "0" or "1" is
// the safe value.
func (s *stateStore) loadFlag(name string, safe bool) (bool, error) {
	return s.loadFlagFrom(name, false, safe)
}

// loadFlagFrom is loadFlag for a record that starts at initial.
func (s *stateStore) loadFlagFrom(name string, initial, safe bool) (bool, error) {
	v, err := s.Load(name, flag(initial), flag(safe))
	switch string(v) {
	case "0":
		return false, err
	case "1":
		return true, err
	}
	return safe, errors.Join(err, errors.New("statefile: "+name+": "+"unexpected value "+truncate(v, 20)))
}

func flag(on bool) []byte {
	if on {
		return []byte("1")
	}
	return []byte("0")
}

// pendingSave is a record to write after the relays of the current event.
type pendingSave struct {
	name  string
	value []byte
}

// saveLater queues record name for flushLater, which writes it after the
// relays are written and before the log lines and audit records: on disk
// before anything slower, never between an event and its relays.
func (l *loop) saveLater(name string, value []byte) {
	// Only the last value counts, written in the order of the last
	// values: the latch's two records rely on it (alarm_latched above).
	l.stateToSave = slices.DeleteFunc(l.stateToSave, func(p pendingSave) bool { return p.name == name })
	l.stateToSave = append(l.stateToSave, pendingSave{name, value})
}

// flushSaves writes what saveLater queued. An entry is taken before it is
// written, so that after a panic in one the rest is not written twice. One
// that fails stays queued, and is written again on every flush (each tick)
// until it works or a newer value replaces it: the disk often comes back
// (ENOSPC freed, a remount), and until then the problem is published.
func (l *loop) flushSaves() {
	if len(l.stateToSave) == 0 {
		return
	}
	var failed []pendingSave
	for len(l.stateToSave) > 0 {
		p := l.stateToSave[0]
		l.stateToSave = l.stateToSave[1:]
		if l.b.state.Save(p.name, p.value) != nil {
			failed = append(failed, p)
		}
	}
	l.stateToSave = failed
	l.reportUnsaved(failed)
}

// reportUnsaved publishes a notice when the set of records that cannot be
// written changes, and keeps doorbridge_state_unsaved_records current.
func (l *loop) reportUnsaved(failed []pendingSave) {
	l.b.m.stateUnsaved.Set(float64(len(failed)))
	names := make([]string, len(failed))
	for i, p := range failed {
		names[i] = p.name
	}
	list := strings.Join(names, ", ")
	if list == l.unsaved {
		return
	}
	l.unsaved = list
	if list == "" {
		l.notice("state saved: bridge.state_dir is durable again")
		return
	}
	l.warnNotice("state not durable: cannot write " + list + " to bridge.state_dir; retried every tick (a restart now reads a missing record as its safe value)")
}

// loadState reads the loop's records at start, reporting damage loudly (log
// and audit) with the value taken instead.
func (l *loop) loadState() {
	var err error
	l.loadLatch()
	if l.lockdown, err = l.b.state.loadFlag(lockdownRecord, true); err != nil {
		l.stateDamaged(lockdownRecord, "lockdown on: publish OFF on "+l.b.topics.LockdownSet+" to end it", err)
	}
	if l.battery, err = l.b.state.loadBattery(); err != nil {
		l.stateDamaged(batteryRecord, "battery budget spent: doors with power_release: false release at once on battery until mains have been back for "+mainsStable.String(), err)
	}
	l.loadAnnounced()
	if l.battery.rebase(l.now()) {
		l.saveLater(batteryRecord, l.battery.encode())
	}
}

// loadLatch reads fire_latch, or on the first start of this release the
// legacy alarm_latched (see the records above), and writes alarm_latched
// to match: a rollback then reads the latch this release starts with.
func (l *loop) loadLatch() {
	s, taken := l.b.state, "fire release latched: publish RESET on "+l.b.topics.AlarmReset+" once the alarm is clear"
	initial := false
	if s.dir != nil && !s.dir.Known(latchRecord) {
		var err error
		if initial, err = s.loadFlag(legacyLatchRecord, true); err != nil {
			l.stateDamaged(legacyLatchRecord, taken, err)
		}
	}
	var err error
	if l.latched, err = s.loadFlagFrom(latchRecord, initial, true); err != nil {
		l.stateDamaged(latchRecord, taken, err)
	}
	l.saveLater(legacyLatchRecord, flag(l.latched))
}

func (l *loop) stateDamaged(record, taken string, err error) {
	l.log.Error("state record unreadable or damaged: taking the safe value", "record", record, "taken", taken, "err", err)
	l.recordLogged(auditEvent{Kind: "state", Outcome: "damaged", Detail: record + ": " + taken, Origin: "startup"})
}
