package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// TestStartMosquittoConfig checks that doorbench's brokers run with the
// stock config (only a listener and anonymous clients; set_tcp_nodelay only
// for the nodelay target) and that Restart comes back on the same port.
func TestStartMosquittoConfig(t *testing.T) {
	bin := testbroker.MosquittoBinary(t)
	for _, nodelay := range []bool{false, true} {
		dir := t.TempDir()
		m, err := startMosquitto(bin, dir, nodelay)
		if err != nil {
			t.Fatal(err)
		}
		port := m.Port("mqtt")
		want := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)
		if nodelay {
			want += "set_tcp_nodelay true\n"
		}
		got, err := os.ReadFile(filepath.Join(dir, "mosquitto.conf"))
		if err != nil || string(got) != want {
			t.Errorf("nodelay %v: config %q (%v), want %q", nodelay, got, err, want)
		}
		if err := m.Restart(); err != nil {
			t.Fatalf("restart: %v\n%s", err, m.Output())
		}
		c, err := dialMQTT(m.Addr("mqtt"), "bench-test", nil)
		if err != nil {
			t.Fatalf("after restart on port %d: %v\n%s", port, err, m.Output())
		}
		c.close()
		m.Kill()
	}
}
