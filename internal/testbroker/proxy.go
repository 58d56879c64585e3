package testbroker

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// proxyWriteTimeout bounds one forwarded write, so a peer that stops reading cannot wedge the
// proxy (or Pause, which waits for writes in progress). A write that times out closes the pair.
const proxyWriteTimeout = 5 * time.Second

// Proxy is a TCP proxy on 127.0.0.1 between clients and a target (typically a Broker), used to
// simulate a link that goes silent (Pause) or breaks (CloseConns). Its methods are safe for
// concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // accept loop and pumps

	mu      sync.Mutex
	cond    *sync.Cond // signalled when paused, closed, writing or a pair's closed flag change
	paused  bool
	closed  bool
	writing int // forwarded writes in progress
	pairs   map[*proxyPair]struct{}
}

// proxyPair is one proxied connection: the accepted client side and the dialled target side.
type proxyPair struct {
	client, target net.Conn
	closed         bool // guarded by Proxy.mu
}

// NewProxy listens on 127.0.0.1:0 and forwards every accepted connection to target (dialled when
// the connection is accepted, even while paused); it is closed, with all its connections, in
// t.Cleanup. A connection whose target cannot be dialled is closed at once.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := StartProxy(target)
	if err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartProxy is NewProxy for a program rather than a test (cmd/doorbench): the caller must Close
// it.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{target: target, ln: ln, pairs: map[*proxyPair]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's address as an MQTT URL, "tcp://127.0.0.1:port".
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// Pause stops forwarding bytes in both directions but keeps every socket open: a silent link.
// Nothing crosses while paused, not even a close: if one side closes its socket, the other side
// learns of it only after Resume. When Pause returns no forwarded write is in progress, so no byte
// read after that point reaches the other side before Resume. Connections accepted while paused
// are connected to the target but silent too.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for p.writing > 0 {
		p.cond.Wait()
	}
}

// Resume forwards again. Bytes held while paused are not dropped: they are delivered, in order,
// right after Resume (what the proxy had read plus what waited in the kernel's socket buffers),
// like TCP retransmitting once a link recovers; a close that happened while paused is passed on
// after them. Connections closed while paused (CloseConns) deliver nothing.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	p.cond.Broadcast()
}

// CloseConns closes all current connections on both sides, like a broken link: the client and the
// target each see their connection closed. It works while paused too. The proxy keeps accepting
// new connections.
func (p *Proxy) CloseConns() {
	p.mu.Lock()
	pairs := make([]*proxyPair, 0, len(p.pairs))
	for pc := range p.pairs {
		pairs = append(pairs, pc)
	}
	p.mu.Unlock()
	for _, pc := range pairs {
		p.closePair(pc)
	}
}

// NumConns is the number of connections the proxy currently holds open.
func (p *Proxy) NumConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// Close stops accepting, closes every connection and waits for the proxy's goroutines. NewProxy
// calls it in t.Cleanup.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	_ = p.ln.Close()
	p.CloseConns()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		tc, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		setNoDelay(c)
		setNoDelay(tc)
		pc := &proxyPair{client: c, target: tc}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = tc.Close()
			return
		}
		p.pairs[pc] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(pc, c, tc)
		go p.pump(pc, tc, c)
	}
}

func setNoDelay(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

// pump copies src to dst until either fails, holding everything (data and end of stream) while
// the proxy is paused, then closes the pair.
func (p *Proxy) pump(pc *proxyPair, src, dst net.Conn) {
	defer p.wg.Done()
	defer p.closePair(pc)
	buf := make([]byte, 32*1024)
	for {
		n, rerr := src.Read(buf)
		if !p.beginWrite(pc) {
			return
		}
		var werr error
		if n > 0 {
			_ = dst.SetWriteDeadline(time.Now().Add(proxyWriteTimeout))
			_, werr = dst.Write(buf[:n])
		}
		p.endWrite()
		if rerr != nil || werr != nil {
			return
		}
	}
}

// beginWrite waits while the proxy is paused and reports whether the pair may still forward; if
// so the caller must call endWrite after writing.
func (p *Proxy) beginWrite(pc *proxyPair) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.paused && !pc.closed && !p.closed {
		p.cond.Wait()
	}
	if pc.closed || p.closed {
		return false
	}
	p.writing++
	return true
}

func (p *Proxy) endWrite() {
	p.mu.Lock()
	p.writing--
	p.cond.Broadcast()
	p.mu.Unlock()
}

// closePair closes both sides of pc once and forgets it.
func (p *Proxy) closePair(pc *proxyPair) {
	p.mu.Lock()
	if pc.closed {
		p.mu.Unlock()
		return
	}
	pc.closed = true
	delete(p.pairs, pc)
	p.cond.Broadcast()
	p.mu.Unlock()
	_ = pc.client.Close()
	_ = pc.target.Close()
}
