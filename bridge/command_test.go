package bridge

import (
	"errors"
	"testing"
	"time"
)

// A JSON command's "ts" must be within MaxCommandAge of now, either way; a
// numeric ts out of range is not a time at all.
func TestParseDoorCommandTimestamps(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		payload string
		want    error // nil: accepted
	}{
		{`{"action": "UNLOCK", "ts": 1800000000}`, nil},
		{`{"action": "UNLOCK", "ts": 1799999995.5}`, nil},
		{`{"action": "UNLOCK", "ts": 1800000004.9}`, nil},
		{`{"action": "UNLOCK", "ts": "2027-01-15T08:00:04Z"}`, nil}, // 1800000004
		{`{"action": "UNLOCK", "ts": 1799999994}`, ErrCommandStale},
		{`{"action": "UNLOCK", "ts": 1800000006}`, ErrCommandStale},
		{`{"action": "UNLOCK", "ts": "2030-01-01T00:00:00Z"}`, ErrCommandStale},
		{`{"action": "UNLOCK", "ts": 1e308}`, ErrCommandUnknown},
		{`{"action": "UNLOCK", "ts": -1e308}`, ErrCommandUnknown},
		{`{"action": "UNLOCK", "ts": -1}`, ErrCommandUnknown},
		{`{"action": "UNLOCK", "ts": "yesterday"}`, ErrCommandUnknown},
	}
	for _, c := range cases {
		cmd, err := ParseDoorCommand([]byte(c.payload), now)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: refused: %v", c.payload, err)
		case c.want == nil && cmd.Request != RequestUnlock:
			t.Errorf("%s: request %v, want UNLOCK", c.payload, cmd.Request)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: error %v, want %v", c.payload, err, c.want)
		case c.want != nil && cmd != (DoorCommand{}):
			t.Errorf("%s: refused but returned %+v", c.payload, cmd)
		}
	}
}
