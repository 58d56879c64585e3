package console

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// DNS rebinding: a web page of attacker.example whose name is made to
// resolve to the bridge reads the console as if it were its own origin
// (the browser sends the attacker's name in Host). The console answers
// only to the names it is known by, and to IP addresses, which cannot be
// rebound.

// hosts are the host names (lower case, no port) the console answers to
// besides IP addresses.
type hosts map[string]bool

// allowedHosts are the host of http.console_url, the host of http.listen
// when it names one, and localhost when it listens on loopback.
func allowedHosts(h config.HTTP) hosts {
	out := hosts{}
	if u, err := url.Parse(h.ConsoleURL); err == nil && u.Hostname() != "" {
		out[normalHost(u.Hostname())] = true
	}
	if host, _, err := net.SplitHostPort(h.Listen); err == nil && host != "" {
		out[normalHost(host)] = true
		if isLoopback(host) {
			out["localhost"] = true
		}
	}
	return out
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func normalHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// allows reports whether a request with Host header hostport is for the
// console.
func (hs hosts) allows(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(host) != nil {
		return true
	}
	return hs[normalHost(host)]
}

// checkHost serves only the allowed host names (and IP addresses): the
// console with console, the bridge's API and metrics with api. A page of
// a rebound name could otherwise read /api/v1/doors (which doors are
// unlocked) and /metrics as its own origin. The health checks answer to
// any name: they tell nothing, and a probe may use any.
func (c *Console) checkHost(console, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			api.ServeHTTP(w, r)
			return
		}
		if !c.hosts.allows(r.Host) {
			c.refusals.log(c.log, r, "request for an unknown host name refused", "host", r.Host)
			jsonError(w, http.StatusMisdirectedRequest, "unknown host name "+clip(r.Host)+
				": open the console at its address, or set http.console_url to the name you use")
			return
		}
		if r.URL.Path != "/" && !strings.HasPrefix(r.URL.Path, "/console/") {
			api.ServeHTTP(w, r)
			return
		}
		console.ServeHTTP(w, r)
	})
}

// refusalLog logs a refused request at most once per client per minute
// (the values in it are the client's own, up to 16 KB a header), counting
// the ones it did not log.
type refusalLog struct {
	mu    sync.Mutex
	last  map[string]time.Time
	quiet map[string]int // refusals not logged since the last line
	now   func() time.Time
}

const refusalLogEvery = time.Minute

func newRefusalLog() *refusalLog {
	return &refusalLog{last: map[string]time.Time{}, quiet: map[string]int{}, now: time.Now}
}

// log logs msg with the client's attrs (string values, clipped), unless
// this client had a line within refusalLogEvery.
func (l *refusalLog) log(log *slog.Logger, r *http.Request, msg string, kv ...string) {
	key := clientKey(r)
	l.mu.Lock()
	now := l.now()
	if t, ok := l.last[key]; ok && now.Sub(t) < refusalLogEvery {
		l.quiet[key]++
		l.mu.Unlock()
		return
	}
	if len(l.last) >= maxClients {
		clear(l.last) // bounded memory; at worst a client logs one more line
		clear(l.quiet)
	}
	l.last[key] = now
	skipped := l.quiet[key]
	delete(l.quiet, key)
	l.mu.Unlock()
	attrs := []any{"remote", r.RemoteAddr, "path", clip(r.URL.Path)}
	for i := 0; i+1 < len(kv); i += 2 {
		attrs = append(attrs, kv[i], clip(kv[i+1]))
	}
	if skipped > 0 {
		attrs = append(attrs, "not_logged_since", skipped)
	}
	log.Warn(msg, attrs...)
}

// clip cuts a client's value for a log line: without its query string
// (a Referer's may hold anything), at most 100 bytes.
func clip(v string) string {
	v, _, _ = strings.Cut(v, "?")
	if len(v) > 100 {
		v = strings.ToValidUTF8(v[:100], "") + "…"
	}
	return v
}

// sameOrigin refuses a state-changing request that a browser sent from
// another origin (Origin, or Referer without it). A request with neither
// comes from a program, not a page; the session's CSRF token still guards
// it.
func (c *Console) sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		from := r.Header.Get("Origin")
		if from == "" {
			from = r.Header.Get("Referer")
		}
		if from != "" && !c.ownOrigin(r, from) {
			c.refusals.log(c.log, r, "cross-origin console request refused", "origin", from)
			jsonError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		h(w, r)
	}
}

func (c *Console) ownOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}
