package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// A drill releases every fail-safe door: the session alone (a browser
// left logged in) does not start one, the console password must be typed
// again, and a wrong one counts toward the login limit.
func TestConsoleDrillNeedsThePasswordAgain(t *testing.T) {
	e := newEnv(t, config.ConsoleOn)
	e.ready()
	b := e.browser()
	b.login(password)
	for _, pw := range []string{"", "wrong"} {
		code, out := b.act(map[string]string{"kind": "drill", "request": "ON", "password": pw})
		if code != http.StatusUnauthorized || out["error"] != "wrong password" {
			t.Errorf("drill with password %q = %d %v, want 401 wrong password", pw, code, out)
		}
	}
	if msgs := e.c.Messages("db/alarm"); len(msgs) > 0 && string(msgs[len(msgs)-1].Payload) == "ON" {
		t.Fatalf("a drill without the password published the alarm")
	}
	if e.sim.Levels()["0"] != true {
		t.Fatalf("a drill without the password released the maglock")
	}
	// When it returns, the drill has taken effect: the bridge heard the
	// alarm back and released the maglock.
	code, out := b.act(map[string]string{"kind": "drill", "request": "ON", "password": password})
	if code != 200 || out["ok"] != true || !strings.HasPrefix(fmt.Sprint(out["message"]), "drill started: the bridge heard ON on db/alarm back") {
		t.Fatalf("drill with the password = %d %v, want started and heard back", code, out)
	}
	if _, v := b.get("/console/api/view"); v["alarm_active"] != true || e.sim.Levels()["0"] != false {
		t.Fatalf("the drill answered ok before it took effect: alarm_active %v, maglock powered %v", v["alarm_active"], e.sim.Levels()["0"])
	}
	// The audit says who asked, from where.
	found := false
	for _, ev := range b.events("drill") {
		found = found || ev["kind"] == "console" && ev["outcome"] == "requested" && strings.HasPrefix(fmt.Sprint(ev["origin"]), "console:127.0.0.1:")
	}
	if !found {
		t.Errorf("no audit record of the console's drill with its origin: %v", b.events(""))
	}
}

// No drill during a lockdown: the page does not offer it and says why,
// and the request is refused with the reason.
func TestConsoleDrillRefusedDuringLockdown(t *testing.T) {
	e := newEnv(t, config.ConsoleOn)
	e.ready()
	b := e.browser()
	b.login(password)
	if _, out := b.act(map[string]string{"kind": "lockdown", "request": "ON"}); out["ok"] != true {
		t.Fatalf("lockdown: %v", out)
	}
	const why = "refused during lockdown: a drill releases every fail-safe door; end the lockdown first"
	if _, v := b.get("/console/api/view"); v["drill_refusal"] != why {
		t.Errorf("view during lockdown: drill_refusal %q, want %q", v["drill_refusal"], why)
	}
	code, out := b.act(map[string]string{"kind": "drill", "request": "ON", "password": password})
	if code != 200 || out["ok"] != false || out["message"] != "drill "+why {
		t.Fatalf("drill during lockdown = %d %v, want refused: %s", code, out, why)
	}
	if msgs := e.c.Messages("db/alarm"); len(msgs) > 0 && string(msgs[len(msgs)-1].Payload) == "ON" {
		t.Fatalf("a drill during lockdown published the alarm")
	}
}

// Every console action is audited with its origin, console:<address>.
func TestConsoleActionOrigin(t *testing.T) {
	e := newEnv(t, config.ConsoleOn)
	e.ready()
	b := e.browser()
	b.login(password)
	if _, out := b.act(map[string]string{"kind": "door", "door": "fsec", "request": "UNLOCK"}); out["ok"] != true {
		t.Fatalf("UNLOCK fsec: %v", out)
	}
	for _, ev := range b.events("fsec") {
		if ev["kind"] == "console" && ev["detail"] == "UNLOCK" && strings.HasPrefix(fmt.Sprint(ev["origin"]), "console:127.0.0.1:") {
			return
		}
	}
	t.Errorf("no console record with its origin among %v", b.events("fsec"))
}

// Only checked values are logged or handed on: a code typed into another
// field of a crafted request never reaches the log.
func TestConsoleActionValuesAreChecked(t *testing.T) {
	e := newEnv(t, config.ConsoleOn)
	e.ready()
	b := e.browser()
	b.login(password)
	const secret = "739146"
	for _, a := range []map[string]string{
		{"kind": "door", "door": "fs", "request": "UNLOCK " + secret},
		{"kind": "door", "door": "fs" + secret, "request": "UNLOCK"},
		{"kind": "door" + secret},
		{"kind": "lockdown", "request": secret},
		{"kind": "reset", "door": secret},
		{"kind": "reset", "code": secret},
	} {
		if code, out := b.act(a); code != http.StatusBadRequest {
			t.Errorf("action %v = %d %v, want 400", a, code, out)
		}
	}
	b.act(map[string]string{"kind": "door", "door": "fs", "request": "UNLOCK", "code": secret}) // a wrong code, where codes go
	if strings.Contains(e.logs.String(), secret) {
		t.Errorf("the code reached the log:\n%s", e.logs.String())
	}
}
