// Package mochifix works around bugs of mochi-mqtt v2.7.9 (the only version
// served here) for both of doorbridge's mochi brokers: the embedded broker
// users run (bridge/embedded.go) and the test broker (internal/testbroker).
// Each was found by the race detector or by a hung test:
//
//   - Listener replaces mochi's TCP listener, whose accept loop and
//     connection goroutines share an error variable (a data race on every
//     connection that ends while another one starts), and whose Close asks
//     mochi to close its clients, which can deadlock (Clients.GetByListener
//     takes its read lock twice). Its Limit bounds what clients that have
//     not logged in can hold: mochi sets no deadline on the CONNECT, so an
//     idle socket held a client and its buffers for ever.
//   - SessionHook: a client that reconnects with the client id of a
//     connection still being cleaned up loses its subscriptions to that
//     clean-up (it stays connected and gets nothing more).
//   - RetainHook: storing a retained message races with the scan for
//     retained messages a new subscription makes.
//   - Flow: a client's queue holds MaximumClientWritesPending messages and
//     mochi drops the rest silently, alarms among them; Flow holds the
//     publisher back instead, for the clients it watches (flow.go).
package mochifix

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Listener is a mochi listener over a net.Listener. It remembers its
// connections, so CloseAll can cut them, and waits for its goroutines.
type Listener struct {
	id string
	ln net.Listener
	wg sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	initialised bool
	serving     int                        // 0: Serve not begun; 1: serving; -1: closed before Serve began
	conns       map[net.Conn]chan struct{} // closed once mochi is done with the connection
	pending     []pendingConn              // not logged in yet, oldest first

	maxPending     int
	connectTimeout time.Duration
	onClose        []func(net.Conn)
	unlink         string // a Unix socket's path, removed on close
}

var _ listeners.Listener = (*Listener)(nil)

// Listen listens on addr (TCP), with TLS when cfg is not nil.
func Listen(id, addr string, cfg *tls.Config) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return NewListener(id, ln), nil
}

// ListenUnix listens on a Unix socket at path with file mode perm: only
// accounts the mode lets open it can connect. A socket left at path by an
// earlier run is replaced; any other file there is an error.
func ListenUnix(id, path string, perm os.FileMode) (*Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	// Bound under a temporary name, given perm, then renamed into place:
	// bound at path, it would be as wide as the umask allows (0777 under
	// umask 0, as in some containers) until the chmod.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // it is unlinked at path, by CloseAll
	if err := os.Chmod(tmp, perm); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	l := NewListener(id, ln)
	l.unlink = path
	return l, nil
}

// NewListener serves mochi on ln, which it takes over.
func NewListener(id string, ln net.Listener) *Listener {
	return &Listener{id: id, ln: ln, conns: map[net.Conn]chan struct{}{}}
}

// pendingConn is a connection that has not logged in, and the host it
// comes from.
type pendingConn struct {
	conn net.Conn
	host string
}

// Limit bounds what clients that have not logged in can hold: at most
// maxPending such connections, and a quarter of them per remote host,
// each given connectTimeout to send its CONNECT and log in. A new
// connection beyond either bound closes the oldest pending one of its own
// host, or, when the listener is full, of the host holding the most: a
// stream of idle sockets from one host closes its own, never the logins of
// another host (Home Assistant's, the bridge's). Call it before the
// listener serves; 0 means no limit.
func (l *Listener) Limit(maxPending int, connectTimeout time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxPending, l.connectTimeout = maxPending, connectTimeout
}

// OnClose registers f, called with each connection once mochi has finished
// with it, whether its client logged in or not. Call it before the listener
// serves.
func (l *Listener) OnClose(f func(net.Conn)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onClose = append(l.onClose, f)
}

// Established records that the client on conn has logged in: it no longer
// counts against the pending limit. (mochi has already replaced the
// connect deadline with its keepalive's.)
func (l *Listener) Established(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = slices.DeleteFunc(l.pending, func(p pendingConn) bool { return p.conn == conn })
}

// admit registers a new connection as pending and returns the pending one
// to close when there are too many. Called with l.mu held.
func (l *Listener) admit(conn net.Conn) (evict net.Conn) {
	if l.connectTimeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
	}
	if l.maxPending <= 0 {
		return nil
	}
	host := remoteHost(conn)
	perHost := max(1, l.maxPending/4)
	counts := map[string]int{}
	for _, p := range l.pending {
		counts[p.host]++
	}
	victim, full := host, counts[host] >= perHost
	if !full && len(l.pending) >= l.maxPending {
		full, victim = true, mostPending(counts)
	}
	if full {
		i := slices.IndexFunc(l.pending, func(p pendingConn) bool { return p.host == victim })
		evict = l.pending[i].conn
		l.pending = slices.Delete(l.pending, i, i+1)
	}
	l.pending = append(l.pending, pendingConn{conn: conn, host: host})
	return evict
}

// mostPending is the host with the most pending connections (the least
// by name among equals, so that the choice is deterministic).
func mostPending(counts map[string]int) string {
	best, n := "", -1
	for h, c := range counts {
		if c > n || c == n && h < best {
			best, n = h, c
		}
	}
	return best
}

// remoteHost is conn's remote address without its port ("" for a Unix
// socket's clients, which all count as one host).
func remoteHost(conn net.Conn) string {
	a := conn.RemoteAddr()
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// Init counts the accept loop that Serve runs (mochi calls Init before
// Serve, synchronously).
func (l *Listener) Init(*slog.Logger) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.initialised {
		l.initialised = true
		l.wg.Add(1)
	}
	return nil
}

// ID names the listener.
func (l *Listener) ID() string { return l.id }

// Address is the address it listens on.
func (l *Listener) Address() string { return l.ln.Addr().String() }

// Protocol is "tcp".
func (l *Listener) Protocol() string { return "tcp" }

// Serve accepts connections and hands each to mochi on its own goroutine.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.serving < 0 { // closed first: CloseAll counted this loop as done
		l.mu.Unlock()
		return
	}
	l.serving = 1
	l.mu.Unlock()
	defer l.wg.Done()
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			return
		}
		conn := net.Conn(&writeFailCloses{Conn: raw})
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		done := make(chan struct{})
		l.conns[conn] = done
		evict := l.admit(conn)
		l.wg.Add(1)
		l.mu.Unlock()
		if evict != nil {
			_ = evict.Close()
		}
		go func() {
			defer l.wg.Done()
			// establish returns once mochi has finished with the client on
			// conn, its clean-up included.
			_ = establish(l.id, conn)
			_ = conn.Close()
			l.Established(conn)
			l.mu.Lock()
			delete(l.conns, conn)
			onClose := l.onClose
			l.mu.Unlock()
			for _, f := range onClose {
				f(conn)
			}
			close(done)
		}()
	}
}

// Done returns a channel closed once mochi has finished with conn, or nil
// if it has already (or conn is not one of this listener's).
func (l *Listener) Done(conn net.Conn) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ch, ok := l.conns[conn]; ok {
		return ch
	}
	return nil
}

// writeFailCloses closes its connection when a write fails (review 12
// major 2). mochi v2.7.9's WriteLoop ignores write errors and skips
// OnPacketSent for them: a client whose peer stopped reading but whose
// socket still reads (half closed) stayed connected, and Flow's count for
// it never went down, so every message for it waited a full Wait. Closed,
// its read goroutine ends and mochi lets the client go.
type writeFailCloses struct{ net.Conn }

func (c *writeFailCloses) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		_ = c.Conn.Close()
	}
	return n, err
}

// CloseAll stops accepting and closes every connection; with reset, each
// is reset (SO_LINGER 0) as if the process had died.
func (l *Listener) CloseAll(reset bool) {
	l.mu.Lock()
	if !l.closed && l.serving == 0 && l.initialised {
		// Serve never began (mochi was not started, or has not got to
		// it yet): it will not, so its count ends here.
		l.serving = -1
		l.wg.Done()
	}
	unlink := ""
	if !l.closed {
		unlink = l.unlink
	}
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	_ = l.ln.Close()
	if unlink != "" {
		_ = os.Remove(unlink)
	}
	for _, c := range conns {
		if w, ok := c.(*writeFailCloses); ok {
			c = w.Conn
		}
		if tc, ok := c.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// Wait waits until the accept loop and every connection's goroutine ended.
func (l *Listener) Wait() { l.wg.Wait() }

// Close closes the listener and every connection, and waits until mochi
// has finished with each. It does not call closeClients, which can deadlock
// in mochi v2.7.9: mochi cleans up after each client as its connection ends.
// Waiting matters: mochi's Server.Close waits on its clients' WaitGroup
// right after closing the listeners, and a connection accepted just before
// that would otherwise add to the WaitGroup during the Wait (a panic,
// "WaitGroup is reused before previous Wait has returned").
func (l *Listener) Close(listeners.CloseFn) {
	l.CloseAll(false)
	l.Wait()
}

// SessionHook lets a client in only once no other connection holds its
// client id: it cuts such a connection (as a session takeover would) and
// waits (5 s at most) until mochi has cleaned up after it. Otherwise that
// clean-up, which works by client id, can run after the new client
// subscribed and delete its subscriptions: what a client reconnecting
// quickly after a dropped link runs into. It acts only once the new client
// has logged in (OnSessionEstablish): a client that cannot log in must not
// be able to cut the bridge's own connection by taking its client id.
type SessionHook struct {
	mqtt.HookBase
	Server    *mqtt.Server
	Listeners []*Listener
}

// ID names the hook.
func (h *SessionHook) ID() string { return "mochifix-sessions" }

// Provides reports that the hook handles OnSessionEstablish only.
func (h *SessionHook) Provides(b byte) bool { return b == mqtt.OnSessionEstablish }

// OnSessionEstablish, called once cl has logged in and before mochi takes
// over an old session, waits until no other connection holds cl's client id.
func (h *SessionHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	for _, l := range h.Listeners {
		l.Established(cl.Net.Conn)
	}
	old, ok := h.Server.Clients.Get(cl.ID)
	if !ok || old == cl || old.Net.Conn == nil {
		return
	}
	var done <-chan struct{}
	for _, l := range h.Listeners {
		if done = l.Done(old.Net.Conn); done != nil {
			break
		}
	}
	if done == nil {
		return
	}
	old.Stop(packets.ErrSessionTakenOver)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// RetainHook serializes storing retained messages with the scans for
// retained messages that subscriptions make: in mochi v2.7.9,
// TopicsIndex.RetainMessage writes a particle's retainPath under the
// particle's lock while scanMessages reads it without. A SUBSCRIBE holds
// the read lock from the moment its SUBACK was written (OnPacketSent) to
// the end of its processing: the scan, and queueing the retained messages
// it found to the client, which never blocks. A retained PUBLISH, or a
// retained will sent at once, holds the write lock until its message is
// stored (OnRetainMessage). Neither holds it across a network write: a
// client that does not read its socket cannot hold up everyone's retained
// messages (a fire alarm among them).
//
// Every lock is paired with its unlock per client: mochi handles one
// client's packets one at a time, and the hook only unlocks what it locked
// for that client, so a retained message stored without OnPublish or OnWill
// (a delayed will) cannot unlock someone else's lock. It must be the last
// hook added: a hook after it could refuse a publish it has locked for.
type RetainHook struct {
	mqtt.HookBase
	mu sync.RWMutex

	heldMu  sync.Mutex
	writing map[*mqtt.Client]bool // holds the write lock for this client's retained message
	reading map[*mqtt.Client]bool // holds the read lock for this client's SUBSCRIBE
}

// ID names the hook.
func (h *RetainHook) ID() string { return "mochifix-retain-scan" }

// Provides reports the events the hook brackets.
func (h *RetainHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketSent, mqtt.OnPacketProcessed, mqtt.OnPublish, mqtt.OnWill, mqtt.OnRetainMessage:
		return true
	}
	return false
}

// mark records (on) or clears (off) that cl holds a lock in set; it reports
// whether the mark changed.
func (h *RetainHook) mark(set *map[*mqtt.Client]bool, cl *mqtt.Client, on bool) bool {
	h.heldMu.Lock()
	defer h.heldMu.Unlock()
	if *set == nil {
		*set = map[*mqtt.Client]bool{}
	}
	if (*set)[cl] == on {
		return false
	}
	if on {
		(*set)[cl] = true
	} else {
		delete(*set, cl)
	}
	return true
}

// OnPacketSent takes the read lock once a SUBACK is written: mochi scans for
// the subscription's retained messages next. (mochi sends a SUBACK only
// there, from the client's own goroutine; a SUBACK it could not write is
// not reported, and the SUBSCRIBE ends without a scan.)
func (h *RetainHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Suback {
		return
	}
	h.mu.RLock()
	if !h.mark(&h.reading, cl, true) {
		h.mu.RUnlock() // cannot happen: one packet at a time per client
	}
}

// OnPacketProcessed releases the read lock once a SUBSCRIBE's retained
// messages are queued to its client.
func (h *RetainHook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type == packets.Subscribe && h.mark(&h.reading, cl, false) {
		h.mu.RUnlock()
	}
}

// OnPublish takes the write lock for a retained message until it is stored.
func (h *RetainHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain {
		h.lockFor(cl)
	}
	return pk, nil
}

// OnWill takes the write lock for a retained will sent at once: mochi then
// stores it without calling OnPublish.
func (h *RetainHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.Retain && will.WillDelayInterval == 0 {
		h.lockFor(cl)
	}
	return will, nil
}

func (h *RetainHook) lockFor(cl *mqtt.Client) {
	h.mu.Lock()
	if !h.mark(&h.writing, cl, true) {
		h.mu.Unlock() // cannot happen: one packet at a time per client
	}
}

// OnRetainMessage releases the write lock taken for cl's message.
func (h *RetainHook) OnRetainMessage(cl *mqtt.Client, _ packets.Packet, _ int64) {
	if h.mark(&h.writing, cl, false) {
		h.mu.Unlock()
	}
}
