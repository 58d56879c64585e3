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
			doors = s.Doors
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doors)
	})
	mux.HandleFunc("GET /api/v1/state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.State())
	})
	return mux
}

// ServeHTTP listens on addr and serves Handler until ctx ends. It returns the
// listener's real address once listening.
func (b *Bridge) ServeHTTP(ctx context.Context, addr string) (string, error) {
	return b.Serve(ctx, addr, b.Handler(), nil)
}

// Serve is ServeHTTP with handler h (the web console around Handler), over
// TLS when tlsCfg is not nil. Requests end with ctx: the console's event
// streams would not end on their own.
func (b *Bridge) Serve(ctx context.Context, addr string, h http.Handler, tlsCfg *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	ln = limitListener(ln, httpMaxConns)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{
		Handler:     h,
		BaseContext: func(net.Listener) context.Context { return ctx },
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
// health check and a dashboard need a handful. Beyond it new connections
// wait in the kernel's backlog until one closes.
const httpMaxConns = 64

// limitListener accepts at most n connections open at once.
func limitListener(ln net.Listener, n int) net.Listener {
	return &limitedListener{Listener: ln, slots: make(chan struct{}, n)}
}

type limitedListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
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
