package bridge

import (
	"strings"
	"testing"
	"time"
)

// ATTACK (a reader of the error topic, the log or the audit file: any broker
// user that may subscribe to B/N/#, e.g. a dashboard): a code sent in a
// payload the parser does not take is echoed in clear. redactPayload hides
// only a JSON key that folds to "code", and ParseDoorCommand's error quotes
// a non-JSON payload whole (its first 40 bytes) — that error is the reason
// in the log line, the audit record's detail and the error message. A
// keypad or a Home Assistant command_template that sends "UNLOCK 1234",
// "1234", or {"action":"UNLOCK","pin":"1234"} has its code published.
// Fixed: errors give lengths and positions, the payload shows only a known
// action and ts; this runs by default.
func TestAttackCodeEchoedInRejection(t *testing.T) {
	const code = "918273"
	for _, p := range []string{
		"UNLOCK " + code,
		code,
		`{"action":"UNLOCK","pin":"` + code + `"}`,
		`{"action":"UNLOCK","data":{"code":"` + code + `"}}`,
		`{"action":"UNLOCK ` + code + `"}`,
		`{"action":"UNLOCK","ts":"` + code + `"}`,
		`{"action":"UNLOCK","code":"` + code + `",`,
		`{"action":"UNLOCK","code":` + code + `}`,
	} {
		_, err := ParseDoorCommand([]byte(p), time.Now())
		if err == nil {
			t.Errorf("%q: parsed", p)
			continue
		}
		shown := redactPayload([]byte(p))
		if strings.Contains(err.Error(), code) || strings.Contains(shown, code) {
			t.Errorf("%q: the code is in the rejection: reason %q, payload shown %q", p, err.Error(), shown)
		}
	}
}
