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

func (h *hub) join() (chan []byte, []byte) {
	ch := make(chan []byte, 4)
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
		select {
		case ch <- msg:
		default: // a slow page gets the next change instead
		}
	}
}

// stream serves the server-sent events: "state" with every change,
// "ping" every second.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(http.Flusher); !ok {
		jsonError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
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
	if first != nil && !send("state", first) {
		return
	}
	if !send("ping", []byte("{}")) {
		return
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg := <-ch:
			if !send("state", msg) {
				return
			}
		case <-ping.C:
			if !send("ping", []byte("{}")) {
				return
			}
		}
	}
}
