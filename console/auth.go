package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/config"
)

const (
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

// get returns the request's live session, or nil.
func (ss *sessions) get(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
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
	s.used = now
	return s
}

func (ss *sessions) drop(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, s.id)
}

// loginLimiter counts wrong passwords per remote address.
type loginLimiter struct {
	mu    sync.Mutex
	fails map[string]*failures
	now   func() time.Time
}

type failures struct {
	n    int
	last time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{fails: map[string]*failures{}, now: time.Now}
}

// wait reports how long addr must wait before it may try again (0: now).
func (l *loginLimiter) wait(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[addr]
	if f == nil || f.n < loginFailures {
		return 0
	}
	return max(0, loginPause-l.now().Sub(f.last))
}

func (l *loginLimiter) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[addr]
	if f == nil {
		if len(l.fails) > 10000 {
			clear(l.fails) // bounded memory; the pause is a brake, not a ledger
		}
		f = &failures{}
		l.fails[addr] = f
	}
	f.n++
	f.last = l.now()
}

func (l *loginLimiter) succeeded(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, addr)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// login checks the password (form field or JSON "password") and starts a
// session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Console != config.ConsoleOn {
		jsonError(w, http.StatusForbidden, "the console has no login (http.console: "+c.cfg.Console+")")
		return
	}
	addr := remoteHost(r)
	if d := c.logins.wait(addr); d > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(d.Seconds())+1))
		jsonError(w, http.StatusTooManyRequests, fmt.Sprintf("too many wrong passwords: try again in %v", d.Round(time.Second)))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1024)
	pw := r.PostFormValue("password")
	if bcrypt.CompareHashAndPassword([]byte(c.cfg.ConsolePasswordHash), []byte(pw)) != nil {
		c.logins.failed(addr)
		c.log.Warn("console login failed", "remote", r.RemoteAddr)
		jsonError(w, http.StatusUnauthorized, "wrong password")
		return
	}
	c.logins.succeeded(addr)
	s := c.sessions.create()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.cfg.TLS(), MaxAge: int(sessionMax.Seconds())})
	c.log.Info("console login", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "csrf": s.csrf})
}
