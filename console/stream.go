package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/httpapi"
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
	sess := c.access(r).sess
	key := clientKey(r)
	if sess != nil {
		key = "session " + sess.id // a logged-in page counts by its session
	}
	slot, why := c.streams.open(key)
	if why != "" {
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, why)
		return
	}
	defer c.streams.close(slot)
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
	c.follow(r.Context(), ch, sess, slot.evicted, send)
}

// follow sends the stream's states and pings until it ends.
func (c *Console) follow(ctx context.Context, ch chan []byte, sess *session, evicted <-chan struct{}, send func(string, []byte) bool) {
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
		case <-evicted:
			return // the page retries after a while (retry:), not at once as after bye
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
// server serves at most httpapi.MaxConns at once: the streams may take
// a quarter of them, at most streamsPerClient from one client (clientKey:
// its full address; a logged-in page, its session).
//
// When every stream is taken, a new client takes the newest stream of the
// client holding the most, if that one holds more than the newcomer would:
// keeping honest pages out then needs maxStreams distinct addresses, not
// maxStreams/streamsPerClient, and refusals no longer go to whoever
// retries slowest.
const (
	maxStreams       = httpapi.MaxConns / 4
	streamsPerClient = 2
	// streamLife ends every stream after a while (the page reconnects at
	// once): a stream is never a connection held for ever.
	streamLife = 10 * time.Minute
)

// streamSlot is one open stream; evicted is closed when another client
// took it.
type streamSlot struct {
	key     string
	evicted chan struct{}
}

// streamLimits counts the open streams, overall and per client.
type streamLimits struct {
	mu        sync.Mutex
	total     int
	perClient map[string][]*streamSlot // oldest first
	max, each int
	lifetime  time.Duration
	opened    int // streams opened since the start
}

func newStreamLimits() *streamLimits {
	return &streamLimits{perClient: map[string][]*streamSlot{}, max: maxStreams, each: streamsPerClient, lifetime: streamLife}
}

// open takes a stream for key, or says why not.
func (s *streamLimits) open(key string) (*streamSlot, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mine := len(s.perClient[key])
	if mine >= s.each {
		return nil, fmt.Sprintf("too many console pages open from %s (%d): close some", key, s.each)
	}
	if s.total >= s.max {
		top := s.holdsMost()
		held := s.perClient[top]
		if len(held) <= mine+1 {
			return nil, fmt.Sprintf("too many console pages open (%d): close some", s.max)
		}
		s.remove(held[len(held)-1])
	}
	slot := &streamSlot{key: key, evicted: make(chan struct{})}
	s.perClient[key] = append(s.perClient[key], slot)
	s.total++
	s.opened++
	return slot, ""
}

// holdsMost is the client holding the most streams.
func (s *streamLimits) holdsMost() string {
	top := ""
	for k, held := range s.perClient {
		if len(held) > len(s.perClient[top]) {
			top = k
		}
	}
	return top
}

// remove takes slot out (evicting it), reporting whether it was in.
func (s *streamLimits) remove(slot *streamSlot) bool {
	held := s.perClient[slot.key]
	for i, o := range held {
		if o == slot {
			close(slot.evicted)
			s.total--
			if held = slices.Delete(held, i, i+1); len(held) == 0 {
				delete(s.perClient, slot.key)
			} else {
				s.perClient[slot.key] = held
			}
			return true
		}
	}
	return false
}

func (s *streamLimits) close(slot *streamSlot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(slot)
}

func (s *streamLimits) life() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lifetime
}
