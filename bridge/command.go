package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/doorbridge/doorbridge/mqttapi"
)

// MaxCommandSize is the largest command payload accepted.
const MaxCommandSize = 1024

// MaxCommandAge rejects JSON commands whose "ts" is older than this (R18): a
// command delayed in transit must not act long after it was given. A "ts"
// more than this far in the future is refused too: such a command would
// stay fresh, and could be replayed, for as long as it is early (and it
// says that the sender's clock is wrong).
const MaxCommandAge = 5 * time.Second

// maxTSSeconds bounds a numeric "ts" (the year 5138): beyond it seconds do not
// convert to a time the same way on every platform.
const maxTSSeconds = 1e11

// DoorCommand is a parsed door command.
type DoorCommand struct {
	Request Request // RequestLock, RequestUnlock or RequestOpen
	Code    string  // "" when none was given
	// TS is when the sender issued the command (zero when it did not say).
	TS time.Time
}

// Errors of command parsing; wrapped with detail.
var (
	ErrCommandTooLarge = errors.New("payload over 1 KiB")
	ErrCommandUnknown  = errors.New("unknown command")
	ErrCommandStale    = errors.New("command too old")
)

type jsonCommand struct {
	Action string          `json:"action"`
	Code   *string         `json:"code"`
	TS     json.RawMessage `json:"ts"`
}

// ParseDoorCommand parses LOCK, UNLOCK, OPEN, or JSON
// {"action": "UNLOCK", "code": "1234", "ts": 1700000000.5}. ts is optional,
// in Unix seconds or RFC 3339; a command older than MaxCommandAge at now, or
// dated more than MaxCommandAge ahead of it, is rejected. Home Assistant renders a missing code as "None": that means none.
func ParseDoorCommand(payload []byte, now time.Time) (DoorCommand, error) {
	if len(payload) > MaxCommandSize {
		return DoorCommand{}, fmt.Errorf("%w (%d bytes)", ErrCommandTooLarge, len(payload))
	}
	p := bytes.TrimSpace(payload)
	if len(p) > 0 && p[0] == '{' {
		return parseJSONCommand(p, now)
	}
	req, ok := parseAction(string(p))
	if !ok {
		return DoorCommand{}, fmt.Errorf("%w: a payload of %d bytes, not shown (%s)", ErrCommandUnknown, len(payload), validCommands)
	}
	return DoorCommand{Request: req}, nil
}

// validCommands says what a door command may be, for the error of one that
// is not. Errors never quote the payload: it may hold a code (a keypad that
// sends "UNLOCK 1234", a key called "pin"), and errors are published, logged
// and audited.
const validCommands = `want LOCK, UNLOCK, OPEN or JSON {"action": ..., "code": ..., "ts": ...}`

// jsonError says what is wrong with a JSON command without quoting it: the
// position, and for a value of the wrong type which of the known keys.
func jsonError(err error, offset int64) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%w: bad JSON at byte %d (%s)", ErrCommandUnknown, syn.Offset, validCommands)
	case errors.As(err, &typ):
		return fmt.Errorf("%w: %q must be a %s (byte %d)", ErrCommandUnknown, typ.Field, jsonKind(typ.Field), typ.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: JSON cut short (%s)", ErrCommandUnknown, validCommands)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return fmt.Errorf("%w: a key other than action, code and ts, before byte %d (%s)", ErrCommandUnknown, offset, validCommands)
	}
	return fmt.Errorf("%w: bad JSON before byte %d (%s)", ErrCommandUnknown, offset, validCommands)
}

func jsonKind(field string) string {
	if field == "ts" {
		return "number (Unix seconds) or an RFC 3339 string"
	}
	return "string"
}

func parseAction(s string) (Request, bool) {
	switch s {
	case mqttapi.Lock:
		return RequestLock, true
	case mqttapi.Unlock:
		return RequestUnlock, true
	case mqttapi.Open:
		return RequestOpen, true
	}
	return 0, false
}

func parseJSONCommand(p []byte, now time.Time) (DoorCommand, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	var jc jsonCommand
	if err := dec.Decode(&jc); err != nil {
		return DoorCommand{}, jsonError(err, dec.InputOffset())
	}
	if dec.More() {
		return DoorCommand{}, fmt.Errorf("%w: data after the JSON object at byte %d", ErrCommandUnknown, dec.InputOffset())
	}
	req, ok := parseAction(jc.Action)
	if !ok {
		return DoorCommand{}, fmt.Errorf("%w: an action of %d bytes that is none of LOCK, UNLOCK and OPEN", ErrCommandUnknown, len(jc.Action))
	}
	c := DoorCommand{Request: req}
	if jc.Code != nil && *jc.Code != "None" {
		c.Code = *jc.Code
	}
	if len(jc.TS) > 0 {
		ts, err := parseTS(jc.TS)
		if err != nil {
			return DoorCommand{}, fmt.Errorf("%w: ts: %v", ErrCommandUnknown, err)
		}
		if age := now.Sub(ts); age > MaxCommandAge {
			return DoorCommand{}, fmt.Errorf("%w: issued %v ago (limit %v)", ErrCommandStale, age.Round(time.Millisecond), MaxCommandAge)
		}
		if ahead := ts.Sub(now); ahead > MaxCommandAge {
			return DoorCommand{}, fmt.Errorf("%w: dated %v in the future (limit %v): check the sender's clock", ErrCommandStale, ahead.Round(time.Millisecond), MaxCommandAge)
		}
		c.TS = ts
	}
	return c, nil
}

func parseTS(raw json.RawMessage) (time.Time, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		if f < 0 || f > maxTSSeconds {
			return time.Time{}, fmt.Errorf("a number of Unix seconds out of range (0 to %g)", float64(maxTSSeconds))
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, errors.New("want Unix seconds or an RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil { // time.Parse's error quotes the string
		return time.Time{}, errors.New("a string that is not RFC 3339 (2006-01-02T15:04:05Z)")
	}
	return t, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
