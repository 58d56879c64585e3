package bridge

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

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics, /healthz, /readyz and /api/v1/doors.
func (b *Bridge) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.reg, promhttp.HandlerOpts{Registry: b.reg}))
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
		s := b.State()
		doors := []DoorView{}
		if s != nil {
			doors = withTimeLeft(s.Doors, b.clock.Now())
		}
		jsonHeaders(w)
		json.NewEncoder(w).Encode(doors)
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

// ServeAPI listens on addr and serves Handler until ctx ends. It returns the
// listener's real address once listening. (Not ServeHTTP: that name is
// http.Handler's, with another meaning.)
func (b *Bridge) ServeAPI(ctx context.Context, addr string) (string, error) {
	return b.Serve(ctx, addr, b.Handler(), nil)
}

// Serve is ServeAPI with handler h (the web console around Handler), over
// TLS when tlsCfg is not nil. Requests end with ctx: the console's event
// streams would not end on their own.
func (b *Bridge) Serve(ctx context.Context, addr string, h http.Handler, tlsCfg *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	lim := limitListener(ln, httpMaxConns)
	ln = lim
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{
		Handler:     h,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnState:   lim.connState,
		// TLS handshake errors and the like: anyone on the LAN can cause them.
		ErrorLog: slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
		// A client that sends slowly, reads slowly or keeps an idle
		// connection open must not hold a goroutine and a socket for ever:
		// enough of them would leave the bridge without file descriptors
		// for its broker connection.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("http server", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}

// httpMaxConns bounds the HTTP API's open connections: Prometheus, a
// health check and a dashboard need a handful. A new connection beyond it
// closes the longest idle keep-alive connection (one between requests):
// idle connections cannot hold every slot and lock /readyz out. Only when
// every connection is busy with a request does a new one wait in the
// kernel's backlog, for at most the request timeouts.
const httpMaxConns = 64

// HTTPMaxConns is httpMaxConns, for the console: its event streams, which
// hold a connection each for minutes, may take only a share of them, so
// that /readyz and /metrics always find a slot.
const HTTPMaxConns = httpMaxConns

// limitListener accepts at most n connections open at once, closing idle
// ones to make room.
func limitListener(ln net.Listener, n int) *limitedListener {
	return &limitedListener{Listener: ln, slots: make(chan struct{}, n), idle: map[*slotConn]time.Time{}}
}

type limitedListener struct {
	net.Listener
	slots chan struct{}

	mu   sync.Mutex
	idle map[*slotConn]time.Time // keep-alive connections between requests, since when
}

// Accept takes a slot for each new connection once it has arrived: when
// none is free it closes the longest idle connection, and looks again
// every idleRecheck while every connection is busy (one more connection,
// the new one, is open meanwhile).
func (l *limitedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
		return l.slotConn(c), nil
	default:
	}
	for {
		l.closeIdlest()
		select {
		case l.slots <- struct{}{}:
			return l.slotConn(c), nil
		case <-time.After(idleRecheck):
		}
	}
}

// slotConn wraps c, holding a slot until its first Close.
func (l *limitedListener) slotConn(c net.Conn) *slotConn {
	sc := &slotConn{Conn: c}
	sc.release = func() {
		l.setIdle(sc, false)
		<-l.slots
	}
	return sc
}

// idleRecheck is how often a new connection waiting for a slot looks for
// an idle connection to close.
const idleRecheck = 100 * time.Millisecond

// connState tracks which connections are idle (http.Server.ConnState).
func (l *limitedListener) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if sc, ok := c.(*slotConn); ok {
		l.setIdle(sc, st == http.StateIdle)
	}
}

func (l *limitedListener) setIdle(c *slotConn, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if idle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// closeIdlest closes the connection idle for longest, if any.
func (l *limitedListener) closeIdlest() {
	l.mu.Lock()
	var oldest *slotConn
	for c, since := range l.idle {
		if oldest == nil || since.Before(l.idle[oldest]) {
			oldest = c
		}
	}
	delete(l.idle, oldest)
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
