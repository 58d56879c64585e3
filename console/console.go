// Package console is doorbridge's local web console: every door, why it is
// in its state, the recent audit events and the few safe actions, served
// from the bridge itself on http.listen at /, so it works while Home
// Assistant or the broker is down.
//
// It holds no door state: it shows what the bridge's loop reports, and an
// action is handed to the loop as the MQTT message it stands for, so every
// check, refusal and code lockout is the MQTT path's own. The page is plain
// HTML, CSS and JavaScript embedded in the binary (no CDN, no build step);
// it follows the state over server-sent events.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
)

// Bridge is what the console needs from the bridge (*bridge.Bridge).
type Bridge interface {
	ConsoleView(ctx context.Context) (*bridge.ConsoleView, error)
	Act(ctx context.Context, a bridge.Action) (bridge.Outcome, error)
	RecentEvents(door string, n int) []audit.Event
	AuditSeq() uint64
	Doors() []string
}

//go:embed assets
var assets embed.FS

// Console serves the web console.
type Console struct {
	b        Bridge
	cfg      config.HTTP
	hosts    hosts
	title    string
	log      *slog.Logger
	sessions *sessions
	logins   *loginLimiter
	devices  deviceKeys
	refusals *refusalLog
	hub      *hub
	streams  *streamLimits
}

// New returns the console of b, configured by cfg.HTTP.
func New(b Bridge, cfg *config.Config, log *slog.Logger) *Console {
	c := &Console{
		b: b, cfg: cfg.HTTP, title: cfg.Bridge.Name, log: log.With("component", "console"),
		sessions: newSessions(), logins: newLoginLimiter(), devices: newDeviceKeys(), refusals: newRefusalLog(), hosts: allowedHosts(cfg.HTTP), streams: newStreamLimits(),
	}
	if c.title == "" {
		c.title = cfg.Bridge.ID
	}
	c.hub = newHub(b, c.log)
	return c
}

// Handler serves the console at / and under /console/, and every other
// path with api (the bridge's JSON API, metrics and health checks).
func (c *Console) Handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /console/api/session", c.session)
	mux.HandleFunc("GET /console/api/view", c.viewer(c.view))
	mux.HandleFunc("GET /console/api/events", c.viewer(c.events))
	mux.HandleFunc("GET /console/api/stream", c.viewer(c.stream))
	mux.HandleFunc("POST /console/api/login", c.sameOrigin(c.login))
	mux.HandleFunc("POST /console/api/logout", c.sameOrigin(c.actor(c.logout)))
	mux.HandleFunc("POST /console/api/action", c.sameOrigin(c.actor(c.action)))
	return c.checkHost(mux, api)
}

// cookieName is the session cookie's name: with the __Host- prefix over
// HTTPS.
func (c *Console) cookieName() string {
	if c.cfg.TLS() {
		return "__Host-" + cookieName
	}
	return cookieName
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// access is what a request may do.
type access struct {
	view, act bool
	sess      *session // nil: not logged in
}

func (c *Console) access(r *http.Request) access {
	switch c.cfg.Console {
	case config.ConsoleReadOnly:
		return access{view: true}
	case config.ConsoleOn:
		s := c.sessions.get(r, c.cookieName())
		return access{view: s != nil || c.cfg.ConsoleViewWithoutLogin, act: s != nil, sess: s}
	}
	return access{}
}

// viewer wraps a handler that needs viewing rights.
func (c *Console) viewer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.access(r).view {
			jsonError(w, http.StatusUnauthorized, "log in to see the console")
			return
		}
		h(w, r)
	}
}

// actor wraps a handler that changes something: it needs a session and
// that session's CSRF token in X-CSRF-Token.
func (c *Console) actor(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := c.access(r)
		switch {
		case c.cfg.Console == config.ConsoleReadOnly:
			jsonError(w, http.StatusForbidden, "the console is read-only (http.console: read_only)")
		case a.sess == nil:
			jsonError(w, http.StatusUnauthorized, "log in first")
		case !a.sess.checkCSRF(r.Header.Get("X-CSRF-Token")):
			jsonError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
		default:
			h(w, r, a.sess)
		}
	}
}

// session tells the page what it may do, and its CSRF token.
func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	a := c.access(r)
	out := map[string]any{"mode": c.cfg.Console, "title": c.title, "view": a.view, "act": a.act,
		"login": c.cfg.Console == config.ConsoleOn && a.sess == nil}
	if a.sess != nil {
		out["csrf"] = a.sess.csrf
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) view(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	v, err := c.b.ConsoleView(ctx)
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.b.RecentEvents(r.URL.Query().Get("door"), 100))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.drop(s)
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.cfg.TLS()})
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// actionRequest is the body of POST /console/api/action.
type actionRequest struct {
	Kind    string `json:"kind"` // door, reset, lockdown, drill
	Door    string `json:"door"`
	Request string `json:"request"`
	Code    string `json:"code"`
	// Password is the console password again: a drill releases every
	// fail-safe door, so a session alone (a browser left logged in) does
	// not start one.
	Password string `json:"password"`
}

// requests are the requests each kind of action takes.
var requests = map[string][]string{
	"door": {"LOCK", "UNLOCK", "OPEN"}, "lockdown": {"ON", "OFF"}, "drill": {"ON", "OFF"}, "reset": {""},
}

// check says what is wrong with req, or "". Only checked values are ever
// logged or handed on: a code typed into another field must not reach the
// log or an MQTT payload.
func (c *Console) check(req actionRequest) string {
	reqs, ok := requests[req.Kind]
	switch {
	case !ok:
		return "kind must be one of door, reset, lockdown, drill"
	case !slices.Contains(reqs, req.Request):
		return "request of a " + req.Kind + " action must be one of " + strings.Join(reqs, ", ")
	case req.Kind == "door" && !slices.Contains(c.b.Doors(), req.Door):
		return "door must be the id of a configured door"
	case req.Kind != "door" && req.Door != "":
		return "door is only for a door action"
	case req.Kind != "door" && req.Code != "":
		return "code is only for a door action"
	case len(req.Code) > 64:
		return "code is too long"
	}
	return ""
}

func (c *Console) action(w http.ResponseWriter, r *http.Request, _ *session) {
	var req actionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	if why := c.check(req); why != "" {
		jsonError(w, http.StatusBadRequest, "bad request: "+why)
		return
	}
	if req.Kind == "drill" && req.Request == "ON" && !c.checkPassword(w, r, req.Password) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	out, err := c.b.Act(ctx, bridge.Action{Kind: req.Kind, Door: req.Door, Request: req.Request, Code: req.Code,
		Origin: "console:" + r.RemoteAddr})
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	// Who acted from where is worth a log line; the code never is.
	c.log.Info("console action", "kind", req.Kind, "door", req.Door, "request", req.Request,
		"remote", r.RemoteAddr, "ok", out.OK, "message", out.Message)
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
