package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// ATTACK (a local user; the LAN when http.listen faces it): 64 keep-alive
// connections, each idle after one request, hold every slot of the HTTP
// API's connection cap for IdleTimeout (60 s, renewed by one request a
// minute). Meanwhile /readyz — the image's HEALTHCHECK — and /metrics
// cannot be reached: the container is reported unhealthy (restarted, and
// every maglock released, where unhealthy containers are restarted) and
// Prometheus' alerts go blind. The cap holds the slot while the
// connection is idle instead of closing idle connections first.
func TestAttackHTTPIdleConnectionsHoldEverySlot(t *testing.T) {
	addr := serveAPI(t)
	for i := range MaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp.Body.Close()
	}
	cl := &http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get("http://" + addr + "/readyz")
	if err == nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Errorf("with %d idle keep-alive connections open, /readyz cannot be reached: %v", MaxConns, err)
	}
}
