package bridge

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseDoorCommand: any payload either parses into a lock, unlock or
// open request that is neither oversized nor stale, or is refused with one
// of the command errors and no command. (go test -fuzz FuzzParseDoorCommand ./bridge)
func FuzzParseDoorCommand(f *testing.F) {
	for _, p := range commandPayloads {
		f.Add([]byte(p.payload))
	}
	for _, s := range []string{
		"LOCK", "OPEN", " UNLOCK\n", "unlock", "", "{}", "{",
		`{"action": "LOCK"}`,
		`{"action": "UNLOCK", "code": null}`,
		`{"action": "OPEN", "code": 1234}`,
		`{"action": "UNLOCK", "ts": "2027-01-15T08:00:03Z"}`,
		`{"action": "UNLOCK", "ts": 1800000003.999}`,
		`{"action": "UNLOCK", "ts": 1799999000}`,
		`{"action": "UNLOCK", "ts": 1800000006}`,
		`{"action": "UNLOCK", "ts": "2030-01-01T00:00:00Z"}`,
		`{"action": "UNLOCK", "ts": 1e308}`,
		`{"action": "UNLOCK", "ts": -1e308}`,
		`{"action": "UNLOCK", "ts": true}`,
		`{"action": "LOCKDOWN"}`,
		`{"action": "LOCK"} {"action": "UNLOCK"}`,
		`{"action": "LOCK", "extra": 1}`,
		`{"action": "\u0055NLOCK"}`,
		strings.Repeat(" ", MaxCommandSize) + "LOCK",
	} {
		f.Add([]byte(s))
	}
	now := time.Unix(1_800_000_001, 0)
	f.Fuzz(func(t *testing.T, payload []byte) {
		cmd, err := ParseDoorCommand(payload, now)
		if err != nil {
			if !errors.Is(err, ErrCommandTooLarge) && !errors.Is(err, ErrCommandUnknown) && !errors.Is(err, ErrCommandStale) {
				t.Fatalf("ParseDoorCommand(%q): error %v is none of the command errors", payload, err)
			}
			if cmd != (DoorCommand{}) {
				t.Fatalf("ParseDoorCommand(%q): error %v, but also a command %+v", payload, err, cmd)
			}
			if len(payload) > MaxCommandSize && !errors.Is(err, ErrCommandTooLarge) {
				t.Fatalf("ParseDoorCommand: %d bytes refused with %v, want ErrCommandTooLarge", len(payload), err)
			}
			return
		}
		if len(payload) > MaxCommandSize {
			t.Fatalf("ParseDoorCommand accepted %d bytes (limit %d)", len(payload), MaxCommandSize)
		}
		switch cmd.Request {
		case RequestLock, RequestUnlock, RequestOpen:
		default:
			t.Fatalf("ParseDoorCommand(%q) = request %v: not a door request", payload, cmd.Request)
		}
		if !cmd.TS.IsZero() && now.Sub(cmd.TS) > MaxCommandAge {
			t.Fatalf("ParseDoorCommand(%q) accepted a command issued %v ago (limit %v)", payload, now.Sub(cmd.TS), MaxCommandAge)
		}
		if !cmd.TS.IsZero() && cmd.TS.Sub(now) > MaxCommandAge {
			t.Fatalf("ParseDoorCommand(%q) accepted a command dated %v in the future (limit %v)", payload, cmd.TS.Sub(now), MaxCommandAge)
		}
		if cmd.Code == "None" {
			t.Fatalf(`ParseDoorCommand(%q): code "None" means no code`, payload)
		}
	})
}
