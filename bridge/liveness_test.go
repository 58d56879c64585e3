package bridge

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/sdnotify"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// notifySocket is a systemd notification socket the test owns: it records
// every datagram with the time it arrived.
type notifySocket struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at   time.Time
	text string
}

func newNotifySocket(t *testing.T) (*notifySocket, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, notifyMsg{at: time.Now(), text: string(buf[:n])})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return s, path
}

// mark sends a datagram of its own to the socket at path and waits until
// it is read: the socket is FIFO, so every datagram sent before the call
// has been recorded by then. It returns the index of the first one to come
// after, for countFrom.
func (s *notifySocket) mark(t *testing.T, path string) int {
	t.Helper()
	const text = "X-TEST-MARK=1"
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	at := -1
	testbroker.Eventually(t, wait, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, m := range s.msgs {
			if m.text == text {
				at = i + 1
				return true
			}
		}
		return false
	}, "the test's own datagram read from the notify socket")
	return at
}

// countFrom counts the datagrams holding state recorded at index from or
// later.
func (s *notifySocket) countFrom(state string, from int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs[min(from, len(s.msgs)):] {
		if strings.Contains("\n"+m.text+"\n", "\n"+state+"\n") {
			n++
		}
	}
	return n
}

// count counts the datagrams holding state that arrived after since.
func (s *notifySocket) count(state string, since time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if m.at.After(since) && strings.Contains("\n"+m.text+"\n", "\n"+state+"\n") {
			n++
		}
	}
	return n
}

func fakeWatchdogDevice(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// systemd's watchdog and the hardware watchdog are fed from the control
// loop only: READY once the link is proven, WATCHDOG=1 and device pings
// while the loop ticks, none while it hangs (although every other
// goroutine runs on), STOPPING and the magic 'V' on a clean shutdown.
func TestSecondLineWatchdogsFollowTheLoop(t *testing.T) {
	sock, path := newNotifySocket(t)
	n, err := sdnotify.New(path, 200*time.Millisecond) // WatchdogSec=200ms: a ping every 100ms
	if err != nil {
		t.Fatal(err)
	}
	br := testbroker.Start(t)
	dev := fakeWatchdogDevice(t)
	cfg := testConfig(br.URL())
	cfg.Watchdog.Device = dev
	h := &harness{t: t, broker: br, c: testbroker.Connect(t, br.URL(), "watcher"), cfg: cfg, notifier: n}
	start := time.Now()
	h.start()
	testbroker.Eventually(t, wait, func() bool { return sock.count(sdnotify.Ready, start) == 1 }, "READY=1 sent")
	if !h.b.State().Connected {
		t.Fatalf("READY=1 before the broker link was proven")
	}
	h.ready()
	testbroker.Eventually(t, wait, func() bool { return sock.count(sdnotify.Watchdog, start) >= 3 }, "WATCHDOG=1 pings")
	testbroker.Eventually(t, wait, func() bool { return fileSize(t, dev) >= 3 }, "hardware watchdog pings")

	// Hang the loop. Other goroutines (MQTT, the in-process watchdog) go on.
	started, release := make(chan struct{}), make(chan struct{})
	h.b.events <- evFunc(func(*loop) { close(started); <-release })
	t.Cleanup(func() { // a failure below must not leave the loop hung for Run's 10 s
		select {
		case <-release:
		default:
			close(release)
		}
	})
	<-started
	hung, size := time.Now(), fileSize(t, dev)
	// A datagram the loop sent just before the hang may be read by the
	// socket's reader any time later (a busy machine delays that
	// goroutine): the window is judged from a datagram of the test's own,
	// which comes after every one of them.
	after := sock.mark(t, path)
	// Pings stop at once: watch a window of several ping intervals
	// (100ms systemd, 5 ticks = 100ms hardware) for one that must not come.
	// The device is written by the loop itself, so nothing is in flight.
	for time.Since(hung) < 800*time.Millisecond {
		if c := sock.countFrom(sdnotify.Watchdog, after); c > 0 {
			t.Fatalf("%d WATCHDOG=1 sent while the loop hangs", c)
		}
		if s := fileSize(t, dev); s != size {
			t.Fatalf("hardware watchdog pinged while the loop hangs (%d -> %d bytes)", size, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resumed := time.Now()
	close(release)
	testbroker.Eventually(t, wait, func() bool { return sock.count(sdnotify.Watchdog, resumed) >= 1 }, "WATCHDOG=1 after the loop resumed")
	testbroker.Eventually(t, wait, func() bool { return fileSize(t, dev) > size }, "hardware pings after the loop resumed")

	stopAt := time.Now()
	h.stop()
	// Sent before Run returned; the reader may not have picked it up yet.
	testbroker.Eventually(t, wait, func() bool { return sock.count(sdnotify.Stopping, stopAt) == 1 }, "STOPPING=1 on shutdown")
	b, _ := os.ReadFile(dev)
	if !strings.HasSuffix(string(b), "V") || strings.Count(string(b), "V") != 1 {
		t.Errorf("device got %q; want pings then one magic V at the clean shutdown", b)
	}
	if h.power("0") || h.power("1") {
		t.Errorf("relays on after shutdown")
	}
}

// Without a broker, READY=1 still comes after the bounded start time, and
// every lock stays unpowered.
func TestReadyAfterBoundedStartWithoutBroker(t *testing.T) {
	sock, path := newNotifySocket(t)
	n, _ := sdnotify.New(path, 0)
	cfg := testConfig("tcp://127.0.0.1:1") // nothing listens there
	relays := sim.New(sim.Options{})
	b, err := Open(cfg, Options{Log: testLogger(t), Notifier: n, TickInterval: 20 * time.Millisecond,
		Drivers: map[string]drivers.Driver{"sim": relays}})
	if err != nil {
		t.Fatal(err)
	}
	b.readyBy = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- b.Run(ctx) }()
	testbroker.Eventually(t, wait, func() bool { return sock.count(sdnotify.Ready, start) == 1 }, "READY=1 without a broker")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("READY=1 after %v, before the bounded start time", d)
	}
	if relays.Levels()["0"] || relays.Levels()["1"] {
		t.Errorf("a lock is powered without a broker")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A fatal error is not a clean shutdown: the hardware watchdog stays armed
// (no magic V), so the machine resets unless the bridge comes back.
func TestHardwareWatchdogArmedAfterFatalError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dev := fakeWatchdogDevice(t)
	cfg := testConfig("")
	cfg.EmbeddedBroker = config.EmbeddedBroker{Listen: busy.Addr().String()} // already taken: fatal
	cfg.Watchdog.Device = dev
	b, err := Open(cfg, Options{Log: testLogger(t), Drivers: map[string]drivers.Driver{"sim": sim.New(sim.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); err == nil {
		t.Fatalf("Run with the broker port taken returned nil")
	}
	if got, _ := os.ReadFile(dev); strings.Contains(string(got), "V") {
		t.Fatalf("magic close written after a fatal error: %q", got)
	}
}
