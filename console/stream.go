package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
)

// pollEvery is how often the hub asks the loop for its view while a page
// is open: a change shows within this (the aim is under a second). It is a
// small evFunc on the loop, and nothing at all while no page is open.
const pollEvery = 200 * time.Millisecond

// pingEvery spaces the stream's keep-alives; the page says it lost the
// bridge when it hears nothing for three of them.
const pingEvery = time.Second

// hub polls the bridge's view while pages are open and hands each change
// to every open stream.
type hub struct {
	b   Bridge
	log *slog.Logger

	mu      sync.Mutex
	clients map[chan []byte]bool
	last    []byte // the last message sent
	stop    context.CancelFunc
}

func newHub(b Bridge, log *slog.Logger) *hub {
	return &hub{b: b, log: log, clients: map[chan []byte]bool{}}
}

// update is one message on the stream: the view, or why there is none.
type update struct {
	View     any    `json:"view,omitempty"`
	Error    string `json:"error,omitempty"`
	AuditSeq uint64 `json:"audit_seq"`
}

// newStream is a stream's channel. It holds one message, the latest
// (offerLatest): a slow page skips the states it could not take in time
// and gets the newest, never an old one while newer ones are dropped.
func newStream() chan []byte { return make(chan []byte, 1) }

// join adds a stream.
func (h *hub) join() (chan []byte, []byte) {
	ch := newStream()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[ch] = true
	if h.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop = cancel
		h.last = nil
		go h.poll(ctx)
	}
	return ch, h.last
}

func (h *hub) leave(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, ch)
	if len(h.clients) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

func (h *hub) poll(ctx context.Context) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		h.publish(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *hub) publish(ctx context.Context) {
	vctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	u := update{AuditSeq: h.b.AuditSeq()}
	v, err := h.b.ConsoleView(vctx)
	if err != nil {
		u.Error = err.Error()
	} else {
		v.Time = time.Time{} // not a change
		u.View = v
	}
	msg, _ := json.Marshal(u)
	h.mu.Lock()
	defer h.mu.Unlock()
	if ctx.Err() != nil || bytes.Equal(msg, h.last) {
		return
	}
	h.last = msg
	for ch := range h.clients {
		offerLatest(ch, msg)
	}
}

// offerLatest puts msg in ch (of capacity 1), replacing the message
// waiting there. Only the hub sends, under its lock.
func offerLatest(ch chan []byte, msg []byte) {
	select {
	case <-ch:
	default:
	}
	ch <- msg
}

// stream serves the server-sent events: "state" with every change,
// "ping" every second, and "bye" before it ends after streamLife (the page
// reconnects at once). It ends too when the session it was opened with
// ends (logout, expiry).
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(http.Flusher); !ok {
		jsonError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	key := clientKey(r)
	if why := c.streams.open(key); why != "" {
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, why)
		return
	}
	defer c.streams.close(key)
	sess := c.access(r).sess
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	// The server's read and write timeouts guard against slow clients; a
	// stream lives on as long as each write goes out in time.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	ch, first := c.hub.join()
	defer c.hub.leave(ch)
	send := func(event string, data []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(5 * pingEvery))
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		return err == nil && rc.Flush() == nil
	}
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	if first != nil && !send("state", first) {
		return
	}
	if !send("ping", []byte("{}")) {
		return
	}
	c.follow(r.Context(), ch, sess, send)
}

// follow sends the stream's states and pings until it ends.
func (c *Console) follow(ctx context.Context, ch chan []byte, sess *session, send func(string, []byte) bool) {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	life := time.NewTimer(c.streams.life())
	defer life.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-ch:
			if !send("state", msg) {
				return
			}
		case <-ping.C:
			if !c.mayView(sess) || !send("ping", []byte("{}")) {
				return
			}
		case <-life.C:
			send("bye", []byte("{}"))
			return
		}
	}
}

// mayView reports whether a stream opened with session sess (nil: none)
// may still show the state.
func (c *Console) mayView(sess *session) bool {
	switch {
	case c.cfg.Console == config.ConsoleReadOnly:
		return true
	case c.cfg.Console != config.ConsoleOn:
		return false
	case sess != nil && c.sessions.live(sess):
		return true
	}
	return c.cfg.ConsoleViewWithoutLogin
}

// Each open page holds a connection for its stream, and the bridge's HTTP
// server serves at most bridge.HTTPMaxConns at once: the streams may take
// a quarter of them, at most streamsPerClient from one client (clientKey),
// so that /readyz, /metrics and the console's own requests always find a
// connection.
const (
	maxStreams       = bridge.HTTPMaxConns / 4
	streamsPerClient = 4
	// streamLife ends every stream after a while (the page reconnects at
	// once): a stream is never a connection held for ever.
	streamLife = 10 * time.Minute
)

// streamLimits counts the open streams, overall and per client.
type streamLimits struct {
	mu        sync.Mutex
	total     int
	perClient map[string]int
	max, each int
	lifetime  time.Duration
	opened    int // streams opened since the start
}

func newStreamLimits() *streamLimits {
	return &streamLimits{perClient: map[string]int{}, max: maxStreams, each: streamsPerClient, lifetime: streamLife}
}

// open takes a stream for key, or says why not.
func (s *streamLimits) open(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.total >= s.max:
		return fmt.Sprintf("too many console pages open (%d): close some", s.max)
	case s.perClient[key] >= s.each:
		return fmt.Sprintf("too many console pages open from %s (%d): close some", key, s.each)
	}
	s.total++
	s.perClient[key]++
	s.opened++
	return ""
}

func (s *streamLimits) close(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perClient[key]--; s.perClient[key] <= 0 {
		delete(s.perClient, key)
	}
}

func (s *streamLimits) life() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lifetime
}
