package bridge

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// ATTACK (a client that may command doors: Home Assistant, the CLI user, a
// misbehaving integration): "lockdown ON" repeated while lockdown is
// already on changes nothing, yet each one is accepted and written as a
// SAFETY record (audit.Safety: an accepted lockdown command). A flood of
// them rotates the safety files and the records of the alarm before it
// (here: the alarm clear and relay records written by ready()) are gone:
// item 6 only protected them against rejected commands.
// Fixed: a lockdown command that changes nothing is no safety record (it
// goes to the commands file, summarised past a burst); this runs by default.
func TestAttackRepeatedLockdownWipesSafetyAudit(t *testing.T) {
	h, _, path := floodHarness(t, nil)
	h.ready()
	first := map[string]bool{}
	if _, err := audit.ReadAll(path, func(_ string, e audit.Event) {
		if audit.Safety(e) && e.Kind == "alarm" {
			first[e.Origin+e.Outcome] = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 {
		t.Fatal("no alarm record before the flood")
	}
	h.flood(floodN, func(int) (string, string) { return "db/t1/lockdown/set", "ON" })
	h.c.Sync(wait)
	testbroker.Eventually(t, floodWait, func() bool {
		return testutil.ToFloat64(h.b.m.commands.WithLabelValues("lockdown", "accepted"))+
			testutil.ToFloat64(h.b.m.commands.WithLabelValues("lockdown", "rejected")) >= floodN
	}, "lockdown commands counted: accepted %v, rejected %v",
		testutil.ToFloat64(h.b.m.commands.WithLabelValues("lockdown", "accepted")),
		testutil.ToFloat64(h.b.m.commands.WithLabelValues("lockdown", "rejected")))
	h.stop()
	kept, lockdowns, safety := 0, 0, 0
	if _, err := audit.ReadAll(path, func(_ string, e audit.Event) {
		if audit.Safety(e) && e.Kind == "alarm" && first[e.Origin+e.Outcome] {
			kept++
		}
		if e.Door == "lockdown" {
			lockdowns++
			if audit.Safety(e) {
				safety++
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d identical lockdown ON commands: %d records of them, %d safety records; alarm records before the flood kept: %d", floodN, lockdowns, safety, kept)
	if safety != 1 {
		t.Errorf("%d safety records of lockdown, want 1: the one change from off to on", safety)
	}
	if kept == 0 {
		t.Errorf("the alarm records written before the flood were rotated out by %d no-op lockdown commands", floodN)
	}
}
