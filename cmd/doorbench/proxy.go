package main

import (
	"net"
	"sync"
	"time"
)

// proxy is a TCP proxy on loopback between the bridge and the broker. Paused,
// it forwards nothing in either direction but keeps both sockets open: a
// silent link (a hung broker, a dead switch port, a Wi-Fi bridge that lost
// its peer), which neither side notices from the socket.
type proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	closed bool
	conns  map[net.Conn]bool
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// pause stops forwarding; it returns the moment it took effect.
func (p *proxy) pause() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	return time.Now()
}

// resume forwards again, what was held first.
func (p *proxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// closeConns cuts every proxied connection (both sides see it closed).
func (p *proxy) closeConns() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.ln.Close()
	p.closeConns()
	p.wg.Wait()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		t, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			t.Close()
			return
		}
		p.conns[c], p.conns[t] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(c, t)
		go p.pump(t, c)
	}
}

// pump copies src to dst, holding every read while paused (even EOF, so a
// close does not cross a silent link either).
func (p *proxy) pump(src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		p.mu.Lock()
		delete(p.conns, src)
		delete(p.conns, dst)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		p.mu.Lock()
		for p.paused && !p.closed && p.conns[src] {
			p.cond.Wait()
		}
		closed := p.closed || !p.conns[src]
		p.mu.Unlock()
		if closed {
			return
		}
		if n > 0 {
			dst.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}
