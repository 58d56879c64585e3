package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/audit"
)

// writeAuditFiles writes events to path.2, path.1 and path (oldest first),
// one file per slice.
func writeAuditFiles(t *testing.T, path string, files ...[]audit.Event) {
	t.Helper()
	for i, events := range files {
		name := path
		if n := len(files) - 1 - i; n > 0 {
			name = fmt.Sprintf("%s.%d", path, n)
		}
		var buf bytes.Buffer
		for _, e := range events {
			line, _ := json.Marshal(e)
			buf.Write(append(line, '\n'))
		}
		if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEventsCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`bridge: {id: ev}
audit: {file: %q}
drivers: [{id: sim, type: sim}]
doors: [{id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`, path)), 0o600)
	now := time.Now()
	on, off := true, false
	writeAuditFiles(t, path,
		[]audit.Event{{Seq: 1, Time: now.Add(-3 * time.Hour), Kind: "bridge", Outcome: "started"}},
		[]audit.Event{
			{Seq: 2, Time: now.Add(-2 * time.Hour), Kind: "relay", Door: "front", Energized: &on, Cause: "normal", Outcome: "locked", Origin: "timer"},
			{Seq: 3, Time: now.Add(-50 * time.Minute), Kind: "hazard", Hazard: "alarm", Outcome: "raised", Origin: "alarm:doorbridge/alarm"},
		},
		[]audit.Event{
			{Seq: 4, Time: now.Add(-50 * time.Minute), Kind: "relay", Door: "front", Energized: &off, Cause: "alarm", Outcome: "unlocked", Origin: "alarm:doorbridge/alarm"},
			{Seq: 5, Time: now.Add(-time.Minute), Kind: "command", Door: "back", Cause: "code", Outcome: "rejected", Detail: "wrong code", Origin: "mqtt:doorbridge/ev/back/set"},
		},
	)
	// A line cut short by a crash is skipped, not fatal.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":6,"ti`)
	f.Close()

	var stdout, stderr bytes.Buffer
	if code := run([]string{"events", "-c", cfgPath, "--since", "1h"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("events: exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[0], "DOOR/HAZARD") {
		t.Fatalf("want a header and the 3 events of the last hour (across rotated files):\n%s", stdout.String())
	}
	for i, want := range [][]string{
		{"3 ", "hazard", "alarm", "raised", "alarm:doorbridge/alarm"},
		{"4 ", "relay", "front", "unlocked (power off)", "alarm"},
		{"5 ", "command", "back", "rejected", "code", "mqtt:doorbridge/ev/back/set", "wrong code"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}
	if !strings.Contains(stderr.String(), "skipped 1 unreadable line") {
		t.Errorf("stderr %q does not report the torn line", stderr.String())
	}

	// Everything, one door, as JSON, from a file given directly.
	stdout.Reset()
	if code := run([]string{"events", "-file", path, "-since", "0", "-door", "front", "-json"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("events -json: exit %d", code)
	}
	var seqs []uint64
	audit.Decode(&stdout, func(e audit.Event) { seqs = append(seqs, e.Seq) })
	if fmt.Sprint(seqs) != "[2 4]" {
		t.Fatalf("events of door front = %v, want [2 4]", seqs)
	}

	// No audit.file: a clear error.
	os.WriteFile(cfgPath, []byte("drivers: [{id: sim, type: sim}]\ndoors: [{id: front, fail_mode: fail_safe, relay: {driver: sim, channel: \"0\"}}]\n"), 0o600)
	stderr.Reset()
	if code := run([]string{"events", "-c", cfgPath}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "audit.file is not set") {
		t.Fatalf("without audit.file: exit %d, %q", code, stderr.String())
	}
}
