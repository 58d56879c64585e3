package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/console"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/httpapi"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

const (
	password = "correct horse"
	doorCode = "1234"
	wait     = 5 * time.Second
)

// env is a running bridge with its console on a real listener, a real
// broker and a client watching it.
type env struct {
	t      *testing.T
	cfg    *config.Config
	broker *testbroker.Broker
	c      *testbroker.Client
	sim    *sim.Driver
	b      *bridge.Bridge
	url    string // http://127.0.0.1:port
	stop   func() // stops the bridge and its listener
	logs   *logBuffer
	con    *console.Console
}

// logBuffer keeps everything the bridge and the console log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func hash(t testing.TB, s string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(s), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// newEnv starts it all: a fail-safe door "fs" (with code 1234: two wrong
// codes lock its keypad for a minute) and a fail-secure door "fsec".
func newEnv(t *testing.T, mode string) *env { return newEnvWith(t, mode, nil) }

// newEnvWith is newEnv with mutate applied to the config first.
func newEnvWith(t *testing.T, mode string, mutate func(*config.Config)) *env {
	t.Helper()
	br := testbroker.Start(t)
	cfg := config.Default()
	cfg.Bridge.ID, cfg.Bridge.Name = "t1", "Test bridge"
	cfg.MQTT.URL, cfg.MQTT.BaseTopic = br.URL(), "db"
	cfg.HTTP.Listen = testbroker.FreeAddr(t)
	cfg.HTTP.Console = mode
	if mode == config.ConsoleOn {
		cfg.HTTP.ConsolePasswordHash = hash(t, password)
	}
	cfg.Watchdog.HeartbeatInterval = 100 * time.Millisecond
	cfg.Watchdog.HeartbeatTimeout = 500 * time.Millisecond
	cfg.Watchdog.RelockDelay = 300 * time.Millisecond
	cfg.Watchdog.LoopTimeout = 2 * time.Second
	cfg.Watchdog.AlarmLatch = true
	cfg.Codes.MaxFailures, cfg.Codes.Lockout = 2, time.Minute
	cfg.Drivers = []config.Driver{{ID: "sim", Type: "sim"}}
	cfg.Doors = []config.Door{
		{ID: "fs", Name: "Fire exit", FailMode: config.FailSafe, Relay: config.Line{Driver: "sim", Channel: "0"},
			UnlockTime: time.Second, Egress: true, CodeHash: hash(t, doorCode)},
		{ID: "fsec", Name: "Server room", FailMode: config.FailSecure, Relay: config.Line{Driver: "sim", Channel: "1"}, UnlockTime: time.Second},
	}
	cfg.Alarms = []config.Alarm{config.DefaultAlarm(cfg.MQTT.BaseTopic)}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	e := &env{t: t, cfg: &cfg, broker: br, sim: sim.New(sim.Options{}), logs: &logBuffer{}}
	e.c = testbroker.Connect(t, br.URL(), "watcher-"+t.Name())
	var out io.Writer = e.logs
	if os.Getenv("DOORBRIDGE_TEST_LOG") != "" {
		out = io.MultiWriter(e.logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := bridge.Open(&cfg, bridge.Options{Log: log, Drivers: map[string]drivers.Driver{"sim": e.sim},
		TickInterval: 20 * time.Millisecond, Version: "test"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e.b = b
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	tlsCfg, err := cfg.HTTP.ServerTLS()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e.con = console.New(b, &cfg, log)
	addr, err := httpapi.Serve(ctx, cfg.HTTP.Listen, e.con.Handler(httpapi.Handler(b)), tlsCfg, log)
	if err != nil {
		cancel()
		t.Fatalf("Serve: %v", err)
	}
	e.url = "http://" + addr
	if cfg.HTTP.TLS() {
		e.url = "https://" + addr
	}
	e.stop = cancel
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	return e
}

func (e *env) topic(door, leaf string) string { return "db/t1/" + door + "/" + leaf }

// ready clears the alarm and waits for both doors to be locked.
func (e *env) ready() {
	e.t.Helper()
	e.c.Publish("db/alarm", "OFF", true)
	e.c.WaitPayload(e.topic("fs", "state"), bridge.StateLocked, wait)
	e.c.WaitPayload(e.topic("fsec", "state"), bridge.StateLocked, wait)
}

// browser is an HTTP client with a cookie jar: one person's browser.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, base: e.url, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// do sends a request and decodes the JSON answer into a map.
func (b *browser) do(method, path, contentType, body string, header map[string]string) (int, map[string]any) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (b *browser) get(path string) (int, map[string]any) { return b.do("GET", path, "", "", nil) }

func (b *browser) login(pw string) (int, map[string]any) {
	b.t.Helper()
	code, out := b.do("POST", "/console/api/login", "application/x-www-form-urlencoded", url.Values{"password": {pw}}.Encode(), nil)
	if s, ok := out["csrf"].(string); ok {
		b.csrf = s
	}
	return code, out
}

// act posts an action with the session's CSRF token.
func (b *browser) act(a map[string]string) (int, map[string]any) {
	b.t.Helper()
	body, _ := json.Marshal(a)
	return b.do("POST", "/console/api/action", "application/json", string(body), map[string]string{"X-CSRF-Token": b.csrf})
}

// events returns the console's list of recent events of door ("" all).
func (b *browser) events(door string) []map[string]any {
	b.t.Helper()
	resp, err := b.hc.Get(b.base + "/console/api/events?door=" + url.QueryEscape(door))
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}
