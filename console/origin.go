package console

import (
	"net"
	"net/http"
	"net/url"
	"strings"

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

// checkHost serves the console's paths (/ and /console/) with console
// only for the allowed host names; other paths go to api unchecked
// (Prometheus and health checks may use any name).
func (c *Console) checkHost(console, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && !strings.HasPrefix(r.URL.Path, "/console/") {
			api.ServeHTTP(w, r)
			return
		}
		if !c.hosts.allows(r.Host) {
			c.log.Warn("console request for an unknown host name refused", "host", r.Host, "remote", r.RemoteAddr)
			jsonError(w, http.StatusMisdirectedRequest, "unknown host name "+r.Host+
				": open the console at its address, or set http.console_url to the name you use")
			return
		}
		console.ServeHTTP(w, r)
	})
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
			c.log.Warn("cross-origin console request refused", "origin", from, "path", r.URL.Path, "remote", r.RemoteAddr)
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
