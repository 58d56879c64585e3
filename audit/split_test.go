package audit

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// However many commands are written (a flood of junk), they never rotate a
// safety record out: they have their own files. ReadAll still gives both in
// sequence order.
func TestCommandFloodKeepsSafetyRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var logs logBuffer
	w, err := Open(Options{Path: path, MaxSize: 4096, MaxFiles: 2, Log: testLog(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	put := func(e Event) {
		seq++
		e.Seq, e.Time = seq, time.Unix(1_800_000_000, 0)
		if !w.Write(e) {
			t.Fatalf("event %d dropped", seq)
		}
	}
	put(Event{Kind: "alarm", Outcome: "alarm", Origin: "mqtt:db/alarm"})
	put(Event{Kind: "code", Door: "front", Outcome: "locked_out"})
	// 2,000 junk commands of ~200 bytes: 100 times what the files hold.
	for i := range 2000 {
		put(Event{Kind: "command", Door: "front", Outcome: "rejected", Cause: "unknown_command", Origin: "mqtt:db/t1/front/set",
			Detail: "unknown command " + string(rune('a'+i%26))})
	}
	put(Event{Kind: "relay", Door: "front", Outcome: "", Cause: "alarm"})
	if err := w.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var last []uint64
	bad, err := ReadAll(path, func(_ string, e Event) {
		if e.Kind != "command" {
			kinds = append(kinds, e.Kind)
		}
		last = append(last, e.Seq)
	})
	if err != nil || bad != 0 {
		t.Fatalf("ReadAll: %d bad, %v", bad, err)
	}
	if want := []string{"alarm", "code", "relay"}; !slices.Equal(kinds, want) {
		t.Fatalf("safety records after the flood: %v, want %v", kinds, want)
	}
	if !slices.IsSorted(last) {
		t.Fatalf("ReadAll out of sequence order: %v", last)
	}
	if len(last) >= 2000 {
		t.Fatalf("%d events kept: the commands' files were not rotated", len(last))
	}
	if got := LastSeq(path); got != seq {
		t.Fatalf("LastSeq = %d, want %d", got, seq)
	}
}

func TestSafetyClassification(t *testing.T) {
	cases := []struct {
		e    Event
		want bool
	}{
		{Event{Kind: "relay", Door: "front"}, true},
		{Event{Kind: "alarm", Outcome: "alarm"}, true},
		{Event{Kind: "hazard", Outcome: "raised"}, true},
		{Event{Kind: "latch", Outcome: "ON"}, true},
		{Event{Kind: "reset", Outcome: "done"}, true},
		{Event{Kind: "code", Outcome: "locked_out"}, true},
		{Event{Kind: "command", Door: "lockdown", Outcome: "accepted"}, true},
		{Event{Kind: "command", Door: "lockdown", Outcome: "rejected"}, false},
		{Event{Kind: "command", Door: "front", Outcome: "accepted"}, false},
		{Event{Kind: "command", Door: "front", Outcome: "rejected"}, false},
		{Event{Kind: "reset", Outcome: "refused"}, false},
	}
	for _, c := range cases {
		if got := Safety(c.e); got != c.want {
			t.Errorf("Safety(%+v) = %v, want %v", c.e, got, c.want)
		}
	}
}
