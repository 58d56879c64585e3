package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/config"
)

const (
	// cookieName is the session cookie; over HTTPS it is __Host-cookieName,
	// which a browser takes only from a secure origin, for path / and
	// without a domain: no other host or plain-HTTP page can plant it.
	cookieName = "doorbridge_console"
	// sessionIdle ends a session nobody used for this long; sessionMax ends
	// every session, used or not.
	sessionIdle = 30 * time.Minute
	sessionMax  = 12 * time.Hour
	// After loginFailures wrong passwords from one address, it may try
	// again once per loginPause.
	loginFailures = 5
	loginPause    = 30 * time.Second
)

type session struct {
	id      string
	csrf    string
	created time.Time
	used    time.Time
}

func (s *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// sessions are the logged-in browsers, in memory: a restart logs everyone out.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	now  func() time.Time
}

func newSessions() *sessions { return &sessions{byID: map[string]*session{}, now: time.Now} }

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (ss *sessions) create() *session {
	now := ss.now()
	s := &session{id: randomToken(), csrf: randomToken(), created: now, used: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, old := range ss.byID {
		if ss.expired(old, now) {
			delete(ss.byID, id)
		}
	}
	ss.byID[s.id] = s
	return s
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.used) > sessionIdle || now.Sub(s.created) > sessionMax
}

// get returns the session of the cookie named name in r, or nil, and
// marks it used.
func (ss *sessions) get(r *http.Request, name string) *session {
	return ss.lookup(r, name, true)
}

// live reports whether s is still a session (not logged out nor expired),
// without marking it used.
func (ss *sessions) live(s *session) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.byID[s.id] == s && !ss.expired(s, ss.now())
}

func (ss *sessions) lookup(r *http.Request, name string, touch bool) *session {
	ck, err := r.Cookie(name)
	if err != nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[ck.Value]
	now := ss.now()
	if s == nil || ss.expired(s, now) {
		return nil
	}
	if touch {
		s.used = now
	}
	return s
}

func (ss *sessions) drop(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, s.id)
}

// loginLimiter counts wrong passwords per client (clientKey: the full
// address, or a known browser's device cookie), and spends a budget of
// wrong passwords shared by every address.
//
// One address's failures pause only that address: on a home LAN every
// phone shares an IPv6 /64, and a neighbour's guesses must not lock the
// owner out. Guessing from many addresses is slowed instead by the shared
// budget (guessEvery), which pauses nobody in particular. A browser that
// logged in before (device cookie) skips the budget, and its failures are
// its own (OWASP: lockout avoidance for known devices).
//
// A client has at most one comparison in flight: concurrent guesses
// cannot all pass the check before any is counted.
type loginLimiter struct {
	mu     sync.Mutex
	fails  map[string]*failures
	now    func() time.Time
	tokens float64   // wrong passwords the shared budget still allows at once
	filled time.Time // when tokens was last topped up
}

type failures struct {
	n       int  // wrong passwords, less the ones forgotten (failForget)
	pending bool // a comparison in flight
	last    time.Time
}

const (
	// failForget: one wrong password of a client is forgotten per this
	// long without another, so a pause does not last for ever.
	failForget = 5 * time.Minute
	// guessEvery and guessBurst are the shared budget of wrong passwords:
	// guessBurst at once, then one per guessEvery, over every address.
	guessEvery = time.Second
	guessBurst = 10
	// maxClients bounds the clients remembered.
	maxClients = 10000
)

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{fails: map[string]*failures{}, now: time.Now, tokens: guessBurst}
}

// loginResult is how an attempt ended: only wrong counts against anyone.
type loginResult int

const (
	loginOK    loginResult = iota
	loginWrong             // a wrong password
	loginVoid              // never compared (busy, request gone)
)

// begin reserves an attempt for key (known: a device cookie vouches for
// the browser): 0 when it may go ahead (it must then call end), else how
// long to wait.
func (l *loginLimiter) begin(key string, known bool) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.fails[key]
	if f == nil {
		if len(l.fails) >= maxClients {
			l.forgetSettled(now)
		}
		f = &failures{}
		l.fails[key] = f
	}
	f.forget(now)
	if f.pending {
		return time.Second
	}
	if f.n >= loginFailures {
		if wait := loginPause - now.Sub(f.last); wait > 0 {
			return wait
		}
	}
	if !known {
		l.refill(now)
		if l.tokens < 1 {
			return max(time.Second, time.Duration((1-l.tokens)*float64(guessEvery)))
		}
		l.tokens--
	}
	f.pending = true
	return 0
}

// end settles an attempt that begin let through.
func (l *loginLimiter) end(key string, known bool, res loginResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !known && res != loginWrong {
		l.refill(now)
		l.tokens = min(guessBurst, l.tokens+1) // the budget is for wrong passwords
	}
	f := l.fails[key]
	if f == nil {
		return
	}
	f.pending = false
	switch res {
	case loginOK:
		delete(l.fails, key)
	case loginWrong:
		f.n++
		f.last = now
	}
}

func (l *loginLimiter) refill(now time.Time) {
	if !l.filled.IsZero() {
		l.tokens = min(guessBurst, l.tokens+float64(now.Sub(l.filled))/float64(guessEvery))
	}
	l.filled = now
}

// forget drops the failures that are old enough.
func (f *failures) forget(now time.Time) {
	if f.n == 0 {
		return
	}
	if k := int(now.Sub(f.last) / failForget); k > 0 {
		f.n = max(0, f.n-k)
		f.last = f.last.Add(time.Duration(k) * failForget)
	}
}

// forgetSettled bounds the memory: it drops the clients with nothing in
// flight and too few failures to be paused. A paused client is never
// dropped (that would give it five fresh guesses); the shared budget
// bounds how many there can be.
func (l *loginLimiter) forgetSettled(now time.Time) {
	for k, f := range l.fails {
		if f.forget(now); !f.pending && f.n < loginFailures {
			delete(l.fails, k)
		}
	}
}

// clientKey is who a request comes from, for the per-client limits: its
// full address. An IPv6 /64 is often a whole home LAN (SLAAC), so keying
// by it would let one phone lock out or crowd out every other.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return host
}

// maxComparing bounds the bcrypt comparisons running at once, over every
// client: each takes tens of milliseconds of a core, and the bridge has
// doors to drive.
const maxComparing = 2

// comparing holds a slot per bcrypt comparison in flight.
var comparing = make(chan struct{}, maxComparing)

// errBusy is a login refused because maxComparing are running.
var errBusy = errors.New("too many logins at once: try again in a moment")

// comparePassword checks pw against hash, waiting at most a second for a
// comparison slot.
func comparePassword(ctx context.Context, hash, pw string) error {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case comparing <- struct{}{}:
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return errBusy
	}
	defer func() { <-comparing }()
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw))
}

// login checks the password (the form field "password"; the body is a
// form, not JSON) and starts a session, ending the one the browser had.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Console != config.ConsoleOn {
		jsonError(w, http.StatusForbidden, "the console has no login (http.console: "+c.cfg.Console+")")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1024)
	pw := r.PostFormValue("password")
	if !c.checkPassword(w, r, pw) {
		return
	}
	if old := c.sessions.get(r, c.cookieName()); old != nil {
		c.sessions.drop(old) // a session id planted before the login is worth nothing after it
	}
	s := c.sessions.create()
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: s.id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.cfg.TLS(), MaxAge: int(sessionMax.Seconds())})
	if _, known := c.device(r); !known {
		http.SetCookie(w, &http.Cookie{Name: c.deviceCookieName(), Value: c.devices.issue(), Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: c.cfg.TLS(), MaxAge: int(deviceLife.Seconds())})
	}
	c.log.Info("console login", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "csrf": s.csrf})
}

// checkPassword compares pw with the console password under the login
// limits, and answers the request itself when it is not the password.
func (c *Console) checkPassword(w http.ResponseWriter, r *http.Request, pw string) bool {
	key, known := c.device(r)
	if d := c.logins.begin(key, known); d > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(d.Seconds())+1))
		jsonError(w, http.StatusTooManyRequests, fmt.Sprintf("too many wrong passwords: try again in %v", d.Round(time.Second)))
		return false
	}
	err := comparePassword(r.Context(), c.cfg.ConsolePasswordHash, pw)
	switch {
	case errors.Is(err, errBusy):
		// Never compared: not a wrong password, or a flood of logins
		// would pause the owner.
		c.logins.end(key, known, loginVoid)
		w.Header().Set("Retry-After", "1")
		jsonError(w, http.StatusServiceUnavailable, err.Error())
		return false
	case err != nil:
		c.logins.end(key, known, loginWrong)
		c.log.Warn("console password refused", "remote", r.RemoteAddr, "path", r.URL.Path)
		jsonError(w, http.StatusUnauthorized, "wrong password")
		return false
	}
	c.logins.end(key, known, loginOK)
	return true
}

// device is the login limits' key of r: its device cookie's when it
// carries a valid one (known), else its address.
func (c *Console) device(r *http.Request) (key string, known bool) {
	if ck, err := r.Cookie(c.deviceCookieName()); err == nil && c.devices.valid(ck.Value) {
		return "device " + ck.Value, true
	}
	return clientKey(r), false
}

func (c *Console) deviceCookieName() string {
	if c.cfg.TLS() {
		return "__Host-" + deviceCookie
	}
	return deviceCookie
}

const (
	// deviceCookie marks a browser that logged in before: its wrong
	// passwords pause only itself, never the address it shares.
	deviceCookie = "doorbridge_device"
	deviceLife   = 90 * 24 * time.Hour
)

// deviceKeys signs device cookies with a key of this process: a restart
// makes every browser unknown again, which costs nothing but the bypass.
type deviceKeys struct{ key []byte }

func newDeviceKeys() deviceKeys {
	k := make([]byte, 32)
	rand.Read(k)
	return deviceKeys{key: k}
}

func (d deviceKeys) sign(id string) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte("doorbridge device " + id))
	return hex.EncodeToString(m.Sum(nil))
}

// issue returns a new device cookie value: a random id and its signature.
func (d deviceKeys) issue() string {
	id := randomToken()[:32]
	return id + "." + d.sign(id)
}

func (d deviceKeys) valid(v string) bool {
	id, sig, ok := strings.Cut(v, ".")
	return ok && len(id) == 32 && hmac.Equal([]byte(sig), []byte(d.sign(id)))
}
