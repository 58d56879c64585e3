// Package httpapi is the bridge's HTTP server: /healthz, /readyz,
// /metrics and /api/v1 (the web console mounts around them), on a
// listener that bounds its connections in all and per address.
package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Bridge is what the server serves: the bridge's health, its state and
// its metrics (*bridge.Bridge).
type Bridge interface {
	Healthy() bool
	Ready() bool
	State() *bridge.Snapshot
	DoorViews() []bridge.DoorView
	Registry() *prometheus.Registry
}

// Handler serves /metrics, /healthz, /readyz and /api/v1/doors.
func Handler(b Bridge) http.Handler {
	reg := b.Registry()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.Healthy() {
			http.Error(w, "control loop not responding", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.Ready() {
			http.Error(w, "not ready: not connected, or still starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /api/v1/doors", func(w http.ResponseWriter, _ *http.Request) {
		jsonHeaders(w)
		json.NewEncoder(w).Encode(b.DoorViews())
	})
	mux.HandleFunc("GET /api/v1/state", func(w http.ResponseWriter, _ *http.Request) {
		jsonHeaders(w)
		json.NewEncoder(w).Encode(b.State())
	})
	return mux
}

// jsonHeaders are the headers of a JSON answer: a browser must not take it
// for anything else (nosniff).
func jsonHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

// Serve listens on addr and serves h (Handler, or the web console around
// it) until ctx ends, over TLS when tlsCfg is not nil. It returns the
// listener's real address once listening. Requests end with ctx: the
// console's event streams would not end on their own.
func Serve(ctx context.Context, addr string, h http.Handler, tlsCfg *tls.Config, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	lim := limitListener(ln, MaxConns)
	ln = lim
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := newServer(ctx, h, lim, log)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}

func newServer(ctx context.Context, h http.Handler, lim *limitedListener, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:     h,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnState:   lim.connState,
		// TLS handshake errors and the like: anyone on the LAN can cause them.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// A client that sends slowly, reads slowly or keeps an idle
		// connection open must not hold a goroutine and a socket for ever:
		// enough of them would leave the bridge without file descriptors
		// for its broker connection.
		ReadHeaderTimeout: 2 * time.Second, // a slow header is also evicted after newGrace when full
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// MaxConns bounds the HTTP API's open connections: Prometheus, a
// health check and a dashboard need a handful. A new connection beyond it
// closes the longest idle keep-alive connection (one between requests) or
// a connection that has not sent its request header within newGrace:
// neither idle nor half-open connections can hold every slot and lock
// /readyz out. Only when every connection is busy with a request does a
// new one wait, for at most the request timeouts. One address holds at
// most httpMaxPerIP of them; a connection beyond that is closed at once.
//
// The console's event streams, which hold a connection each for minutes,
// may take only a share of them.
const MaxConns = 64

const (
	// httpMaxPerIP bounds the connections of one address (not loopback:
	// the host's own health check and a local reverse proxy).
	httpMaxPerIP = 8
	// newGrace is how long a new connection may take to send its request
	// header before a newcomer may take its slot.
	newGrace = time.Second
)

// limitListener accepts at most n connections open at once, closing idle
// or stalled ones to make room.
func limitListener(ln net.Listener, n int) *limitedListener {
	return &limitedListener{Listener: ln, slots: make(chan struct{}, n), perIP: httpMaxPerIP, grace: newGrace,
		exempt: isLoopback, waiting: map[*slotConn]waitingConn{}, byIP: map[string]int{}}
}

type limitedListener struct {
	net.Listener
	slots  chan struct{}
	perIP  int
	grace  time.Duration
	exempt func(ip string) bool // addresses without the per-address cap

	mu      sync.Mutex
	waiting map[*slotConn]waitingConn // connections not in a request
	byIP    map[string]int
}

// waitingConn is a connection between requests (idle) or before its first
// (new), since when.
type waitingConn struct {
	since time.Time
	idle  bool
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

// Accept takes a slot for each new connection once it has arrived: when
// none is free it closes the longest idle or stalled connection, and
// looks again every idleRecheck while every connection is busy (one more
// connection, the new one, is open meanwhile). A connection from an
// address that holds perIP already is closed at once.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if !l.takeIP(ip) {
			c.Close()
			continue
		}
		l.waitSlot()
		return l.slotConn(c, ip), nil
	}
}

func (l *limitedListener) waitSlot() {
	select {
	case l.slots <- struct{}{}:
		return
	default:
	}
	for {
		l.closeStalest()
		select {
		case l.slots <- struct{}{}:
			return
		case <-time.After(idleRecheck):
		}
	}
}

func remoteIP(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// takeIP counts a connection of ip, unless ip has its share already.
func (l *limitedListener) takeIP(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP[ip] >= l.perIP && (l.exempt == nil || !l.exempt(ip)) {
		return false
	}
	l.byIP[ip]++
	return true
}

// slotConn wraps c, holding a slot until its first Close.
func (l *limitedListener) slotConn(c net.Conn, ip string) *slotConn {
	sc := &slotConn{Conn: c}
	l.setWaiting(sc, true, false)
	sc.release = func() {
		l.mu.Lock()
		delete(l.waiting, sc)
		if l.byIP[ip]--; l.byIP[ip] <= 0 {
			delete(l.byIP, ip)
		}
		l.mu.Unlock()
		<-l.slots
	}
	return sc
}

// idleRecheck is how often a new connection waiting for a slot looks for
// an idle or stalled connection to close.
const idleRecheck = 100 * time.Millisecond

// connState tracks which connections are between requests
// (http.Server.ConnState).
func (l *limitedListener) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if sc, ok := c.(*slotConn); ok && st != http.StateNew { // new: since Accept
		l.setWaiting(sc, st == http.StateIdle, true)
	}
}

// setWaiting marks c waiting (new, or idle when idle) or, when not
// waiting, in a request.
func (l *limitedListener) setWaiting(c *slotConn, waiting, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if waiting {
		l.waiting[c] = waitingConn{since: time.Now(), idle: idle}
	} else {
		delete(l.waiting, c)
	}
}

// closeStalest closes the connection idle for longest, or that has not
// sent its first request header within grace, if any.
func (l *limitedListener) closeStalest() {
	l.mu.Lock()
	var oldest *slotConn
	now := time.Now()
	for c, w := range l.waiting {
		if !w.idle && now.Sub(w.since) < l.grace {
			continue
		}
		if oldest == nil || w.since.Before(l.waiting[oldest].since) {
			oldest = c
		}
	}
	delete(l.waiting, oldest)
	l.mu.Unlock()
	if oldest != nil {
		_ = oldest.Close()
	}
}

// slotConn gives its slot back once, on the first Close.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
