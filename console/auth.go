package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
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

// loginLimiter counts wrong passwords per client (clientKey). A
// comparison in flight counts as a failure until it is known not to be
// one: concurrent guesses cannot all pass the check before any is counted.
type loginLimiter struct {
	mu    sync.Mutex
	fails map[string]*failures
	now   func() time.Time
}

type failures struct {
	n       int // wrong passwords
	pending int // comparisons in flight
	last    time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{fails: map[string]*failures{}, now: time.Now}
}

// begin reserves an attempt for key: 0 when it may go ahead (it must then
// call end), else how long it must wait.
func (l *loginLimiter) begin(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[key]
	if f == nil {
		if len(l.fails) > 10000 {
			l.forgetSettled() // bounded memory; the pause is a brake, not a ledger
		}
		f = &failures{}
		l.fails[key] = f
	}
	if f.n+f.pending >= loginFailures {
		// Past the limit: one attempt per loginPause, and none while one
		// is in flight.
		wait := max(0, loginPause-l.now().Sub(f.last))
		if f.pending > 0 || wait > 0 {
			return max(wait, time.Second)
		}
	}
	f.pending++
	return 0
}

// end settles an attempt that begin let through.
func (l *loginLimiter) end(key string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[key]
	if f == nil {
		return
	}
	f.pending--
	switch {
	case ok && f.pending == 0:
		delete(l.fails, key)
	case ok:
		f.n = 0
	default:
		f.n++
		f.last = l.now()
	}
}

func (l *loginLimiter) forgetSettled() {
	for k, f := range l.fails {
		if f.pending == 0 {
			delete(l.fails, k)
		}
	}
}

// clientKey is who a request comes from, for the limits: its IPv4
// address, or the /64 of its IPv6 address (one host usually holds a whole
// /64, and could otherwise take a fresh address for every guess).
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
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

// login checks the password (form field or JSON "password") and starts a
// session, ending the one the browser had.
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
	c.log.Info("console login", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "csrf": s.csrf})
}

// checkPassword compares pw with the console password under the login
// limits, and answers the request itself when it is not the password.
func (c *Console) checkPassword(w http.ResponseWriter, r *http.Request, pw string) bool {
	key := clientKey(r)
	if d := c.logins.begin(key); d > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(d.Seconds())+1))
		jsonError(w, http.StatusTooManyRequests, fmt.Sprintf("too many wrong passwords: try again in %v", d.Round(time.Second)))
		return false
	}
	err := comparePassword(r.Context(), c.cfg.ConsolePasswordHash, pw)
	// An attempt turned away as busy counts as a wrong one: a flood from
	// one address pauses that address, and the count stays exact.
	c.logins.end(key, err == nil)
	switch {
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "1")
		jsonError(w, http.StatusServiceUnavailable, err.Error())
		return false
	case err != nil:
		c.log.Warn("console password refused", "remote", r.RemoteAddr, "path", r.URL.Path)
		jsonError(w, http.StatusUnauthorized, "wrong password")
		return false
	}
	return true
}
