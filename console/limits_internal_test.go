package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/config"
)

const testPassword = "correct horse"

// loginConsole is a console with a login, served without a listener: the
// tests set each request's address themselves.
func loginConsole(t *testing.T) (*Console, http.Handler) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.HTTP.Console = config.ConsoleOn
	cfg.HTTP.ConsolePasswordHash = string(h)
	cfg.HTTP.Listen = "127.0.0.1:9180"
	c := New(nil, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return c, c.Handler(http.NotFoundHandler())
}

// postLogin logs in from remote with pw (and cookies), on ctx.
func postLogin(h http.Handler, ctx context.Context, remote, pw string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(ctx, "POST", "/console/api/login",
		strings.NewReader(url.Values{"password": {pw}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Host = "127.0.0.1:9180"
	r.RemoteAddr = remote
	for _, ck := range cookies {
		r.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// M-A: a phone on the same IPv6 /64 (SLAAC: the whole home LAN) guessing
// wrong does not lock the owner's phone out.
func TestLoginPauseIsPerAddressNotPerSlash64(t *testing.T) {
	_, h := loginConsole(t)
	for i := range 6 {
		postLogin(h, context.Background(), "[2001:db8:1:2::bad]:5555", fmt.Sprint("guess ", i))
	}
	if w := postLogin(h, context.Background(), "[2001:db8:1:2::bad]:5555", testPassword); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the guesser's right password = %d, want 429", w.Code)
	}
	if w := postLogin(h, context.Background(), "[2001:db8:1:2::0c0a]:6666", testPassword); w.Code != http.StatusOK {
		t.Fatalf("the owner on the same /64 = %d %s, want 200", w.Code, w.Body)
	}
}

// M-A: a browser that logged in before (device cookie) is not paused by
// wrong passwords from its address; a forged cookie is worth nothing.
func TestLoginDeviceCookieSkipsTheAddressPause(t *testing.T) {
	_, h := loginConsole(t)
	const addr = "192.0.2.7:1000"
	w := postLogin(h, context.Background(), addr, testPassword)
	var dev *http.Cookie
	for _, ck := range w.Result().Cookies() {
		if ck.Name == deviceCookie {
			dev = ck
		}
	}
	if dev == nil || !dev.HttpOnly || dev.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login set device cookie %v, want an HttpOnly SameSite=Strict one", dev)
	}
	for i := range 6 {
		postLogin(h, context.Background(), addr, fmt.Sprint("guess ", i))
	}
	if w := postLogin(h, context.Background(), addr, testPassword); w.Code != http.StatusTooManyRequests {
		t.Fatalf("right password without the cookie after 6 wrong = %d, want 429", w.Code)
	}
	forged := &http.Cookie{Name: deviceCookie, Value: strings.Repeat("a", 32) + "." + strings.Repeat("0", 64)}
	if w := postLogin(h, context.Background(), addr, testPassword, forged); w.Code != http.StatusTooManyRequests {
		t.Fatalf("right password with a forged device cookie = %d, want 429", w.Code)
	}
	if w := postLogin(h, context.Background(), addr, testPassword, dev); w.Code != http.StatusOK {
		t.Fatalf("right password with the device cookie = %d %s, want 200", w.Code, w.Body)
	}
}

// M-A: wrong passwords are forgotten with time; a pause does not last
// for ever.
func TestLoginFailuresDecay(t *testing.T) {
	l := newLoginLimiter()
	now := time.Unix(1e9, 0)
	l.now = func() time.Time { return now }
	for range loginFailures {
		if d := l.begin("a", false); d != 0 {
			t.Fatalf("begin = %v, want 0", d)
		}
		l.end("a", false, loginWrong)
		now = now.Add(guessEvery)
	}
	if d := l.begin("a", false); d == 0 {
		t.Fatal("not paused after 5 wrong passwords")
	}
	now = now.Add(failForget)
	for range loginFailures - 1 {
		now = now.Add(loginPause)
	}
	// One failure forgotten: one more try, then the next is paused again.
	if d := l.begin("a", false); d != 0 {
		t.Fatalf("begin after %v = %v, want 0", failForget, d)
	}
	l.end("a", false, loginWrong)
	now = now.Add(5 * failForget)
	for i := range loginFailures - 1 {
		if d := l.begin("a", false); d != 0 {
			t.Fatalf("try %d after the failures were forgotten: wait %v", i, d)
		}
		l.end("a", false, loginWrong)
	}
}

// M-B: logins turned away as busy (every comparison slot taken) or whose
// request went away are not wrong passwords: they do not pause the owner.
func TestLoginBusyIsNotAWrongPassword(t *testing.T) {
	_, h := loginConsole(t)
	for range cap(comparing) {
		comparing <- struct{}{}
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 2 * loginFailures {
		if w := postLogin(h, gone, "192.0.2.9:1", testPassword); w.Code != http.StatusServiceUnavailable {
			t.Errorf("login %d with every slot taken = %d, want 503", i, w.Code)
		}
	}
	for range cap(comparing) {
		<-comparing
	}
	if w := postLogin(h, context.Background(), "192.0.2.9:1", testPassword); w.Code != http.StatusOK {
		t.Fatalf("the right password once the slots are free = %d %s, want 200", w.Code, w.Body)
	}
}

// M-B: one attempt in flight per client, and a budget of wrong passwords
// over every address slows guessing from many without pausing anyone in
// particular; a known browser is not held by it.
func TestLoginSharedBudget(t *testing.T) {
	l := newLoginLimiter()
	now := time.Unix(1e9, 0)
	l.now = func() time.Time { return now }
	if l.begin("x", false) != 0 || l.begin("x", false) == 0 {
		t.Fatal("a second attempt from x while one is in flight was let through")
	}
	l.end("x", false, loginVoid)
	for i := range guessBurst {
		k := fmt.Sprint("198.51.100.", i)
		if d := l.begin(k, false); d != 0 {
			t.Fatalf("guess %d: wait %v", i, d)
		}
		l.end(k, false, loginWrong)
	}
	if d := l.begin("203.0.113.1", false); d == 0 {
		t.Fatal("a fresh address got past the spent budget")
	}
	if d := l.begin("device x", true); d != 0 {
		t.Fatalf("a known browser waits %v for the budget", d)
	}
	now = now.Add(guessEvery)
	if d := l.begin("203.0.113.1", false); d != 0 {
		t.Fatalf("a fresh address after %v: wait %v", guessEvery, d)
	}
}

// M-B: making room for new clients never forgets a paused one (that would
// give it five fresh guesses).
func TestLoginForgetKeepsPausedClients(t *testing.T) {
	l := newLoginLimiter()
	now := time.Unix(1e9, 0)
	l.now = func() time.Time { return now }
	for range loginFailures {
		l.begin("attacker", true)
		l.end("attacker", true, loginWrong)
	}
	for i := range maxClients {
		l.begin(fmt.Sprint("c", i), true)
		l.end(fmt.Sprint("c", i), true, loginVoid)
	}
	l.begin("one more", true)
	if d := l.begin("attacker", true); d == 0 {
		t.Fatal("the paused client was forgotten to make room")
	}
}

// m-D: a refused request's log line holds at most ~100 bytes of each of
// the client's values, no query string, and one line per client per
// minute, saying how many were not logged.
func TestRefusalLogClippedAndRateLimited(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := newRefusalLog()
	now := time.Unix(1e9, 0)
	l.now = func() time.Time { return now }
	r := httptest.NewRequest("GET", "/api/v1/doors?token=secret", nil)
	r.RemoteAddr = "192.0.2.1:1"
	for range 5 {
		l.log(log, r, "refused", "origin", "http://"+strings.Repeat("x", 16000)+"/?q=secret")
	}
	if n := strings.Count(buf.String(), "refused"); n != 1 {
		t.Fatalf("%d lines for 5 refusals within a minute, want 1", n)
	}
	if strings.Contains(buf.String(), strings.Repeat("x", 101)) || strings.Contains(buf.String(), "secret") {
		t.Fatalf("the line holds the client's values unclipped: %.300s", buf.String())
	}
	now = now.Add(refusalLogEvery)
	l.log(log, r, "refused", "origin", "x")
	if !strings.Contains(buf.String(), "not_logged_since=4") {
		t.Fatalf("the next line does not count the 4 not logged: %s", buf.String())
	}
}
