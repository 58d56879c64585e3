package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// DNS rebinding: a page of attacker.example resolved to the bridge sends
// its own name in Host. The console answers only to its own names and IP
// addresses (localhost for a loopback listener), and so do the bridge's
// API and metrics.
func TestConsoleRefusesUnknownHostNames(t *testing.T) {
	e := newEnv(t, config.ConsoleReadOnly)
	_, port, _ := strings.Cut(strings.TrimPrefix(e.url, "http://"), ":")
	get := func(host, path string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", e.url+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, host := range []string{"attacker.example:" + port, "attacker.example", "localhost.attacker.example:" + port} {
		for _, path := range []string{"/", "/console/api/session", "/console/api/view", "/console/static/app.js"} {
			if code := get(host, path); code != http.StatusMisdirectedRequest {
				t.Errorf("GET %s with Host %s = %d, want 421", path, host, code)
			}
		}
	}
	for _, host := range []string{"localhost:" + port, "LOCALHOST:" + port, "127.0.0.1:" + port} {
		if code := get(host, "/console/api/session"); code != 200 {
			t.Errorf("GET session with Host %s = %d, want 200", host, code)
		}
	}
	// The bridge's API and metrics too (a rebound page could read which
	// doors are unlocked); the health checks answer to any name.
	for _, path := range []string{"/metrics", "/api/v1/doors", "/api/v1/state"} {
		if code := get("attacker.example:"+port, path); code != http.StatusMisdirectedRequest {
			t.Errorf("GET %s with another name = %d, want 421", path, code)
		}
		if code := get("127.0.0.1:"+port, path); code != 200 {
			t.Errorf("GET %s by IP address = %d, want 200", path, code)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := get("attacker.example:"+port, path); code == http.StatusMisdirectedRequest {
			t.Errorf("GET %s with another name = %d, want it answered", path, code)
		}
	}
	// The refusals are logged once per client per minute.
	for range 20 {
		get(strings.Repeat("x", 10000)+".example", "/api/v1/doors?secret=1")
	}
	if n := strings.Count(e.logs.String(), "request for an unknown host name refused"); n != 1 {
		t.Errorf("%d log lines for the refused requests of one client, want 1 (once a minute)", n)
	}
}

// A state-changing request sent by a page of another origin is refused,
// whether the browser says so in Origin or only in Referer.
func TestConsoleRefusesCrossOriginPosts(t *testing.T) {
	e := newEnv(t, config.ConsoleOn)
	post := func(header map[string]string) int {
		t.Helper()
		code, _ := e.browser().do("POST", "/console/api/login", "application/x-www-form-urlencoded",
			url.Values{"password": {password}}.Encode(), header)
		return code
	}
	for _, h := range []map[string]string{
		{"Origin": "http://attacker.example"},
		{"Origin": "null"},
		{"Origin": "https://" + strings.TrimPrefix(e.url, "http://")}, // another scheme
		{"Referer": "http://attacker.example/page"},
	} {
		if code := post(h); code != http.StatusForbidden {
			t.Errorf("login with %v = %d, want 403", h, code)
		}
	}
	for _, h := range []map[string]string{nil, {"Origin": e.url}, {"Referer": e.url + "/"}} {
		if code := post(h); code != 200 {
			t.Errorf("login with %v = %d, want 200", h, code)
		}
	}
}

// JSON answers are never sniffed as something else.
func TestJSONIsNosniff(t *testing.T) {
	e := newEnv(t, config.ConsoleReadOnly)
	for _, path := range []string{"/console/api/session", "/console/api/view", "/console/api/events", "/api/v1/doors", "/api/v1/state"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
	}
}
