// Package testbroker is test infrastructure for end-to-end tests against real MQTT brokers: a
// broker per test (mochi-mqtt in-process, or a real mosquitto process), a TCP proxy that can
// simulate a silent or broken link, and a recording MQTT client to publish and observe with.
//
// Everything here takes a testing.TB, registers its own cleanup, and fails the test on error, so
// its functions and methods must be called from the test's goroutine (the one running the Test
// function or one of its subtests), like t.Fatal itself.
package testbroker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/doorbridge/doorbridge/internal/mochifix"
)

// EnvMosquitto is the environment variable that makes Start run a real mosquitto process instead
// of the in-process mochi-mqtt broker. Its value is the path of the mosquitto binary, or "1" for
// DefaultMosquitto.
const EnvMosquitto = "DOORBRIDGE_TEST_MOSQUITTO"

// DefaultMosquitto is the mosquitto binary used when EnvMosquitto is "1".
const DefaultMosquitto = "/usr/sbin/mosquitto"

// Broker kinds, as returned by Broker.Kind.
const (
	KindMochi     = "mochi"
	KindMosquitto = "mosquitto"
)

// startTimeout bounds how long Start and Restart wait for a broker to accept connections
// (including retrying a bind on a port that is still busy).
const startTimeout = 10 * time.Second

// Broker is a running MQTT broker for a test. It listens on 127.0.0.1 and keeps its port across
// Kill and Restart. Its methods are safe to call from one goroutine at a time (the test's).
type Broker struct {
	t    testing.TB
	kind string
	bin  string        // mosquitto binary, for KindMosquitto
	dir  string        // temporary directory for mosquitto's config
	out  *lockedBuffer // output of every mosquitto run
	port int

	mu      sync.Mutex
	running bool
	mochi   *mochiRun
	mosq    *mosqRun
}

// Start starts a broker for t and stops it in t.Cleanup.
//
// By default it is mochi-mqtt in-process on 127.0.0.1:0 with the allow-all auth hook (Addr
// reports the real port). When the environment variable DOORBRIDGE_TEST_MOSQUITTO is set (to the
// mosquitto binary path, or "1" meaning /usr/sbin/mosquitto) it starts a real mosquitto process
// instead, in the foreground, from a config file in t.TempDir() (`listener <port> 127.0.0.1`,
// `allow_anonymous true`, `persistence false`, `set_tcp_nodelay true`) on a free port it picked,
// and waits until that port accepts connections. If mosquitto fails to start (say another process
// took the port in between), Start tries again on another port, a few times. mosquitto's output
// is logged when the test fails.
func Start(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{t: t, kind: KindMochi}
	if v := os.Getenv(EnvMosquitto); v != "" {
		b.kind = KindMosquitto
		b.bin = v
		if v == "1" {
			b.bin = DefaultMosquitto
		}
		b.dir = t.TempDir()
		b.out = &lockedBuffer{}
	}
	t.Cleanup(b.stop)
	if b.kind == KindMosquitto {
		t.Cleanup(func() { // runs before b.stop
			if t.Failed() {
				t.Logf("testbroker: mosquitto output:\n%s", b.out.String())
			}
		})
	}

	if b.kind == KindMochi {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testbroker: listen: %v", err)
		}
		b.port = ln.Addr().(*net.TCPAddr).Port
		b.startMochi(ln)
		return b
	}

	if _, err := exec.LookPath(b.bin); err != nil {
		t.Fatalf("testbroker: %s=%q: %v", EnvMosquitto, os.Getenv(EnvMosquitto), err)
	}
	var errs []error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testbroker: picking a free port: %v", err)
		}
		b.port = port
		err = b.startMosquitto(time.Now().Add(startTimeout))
		if err == nil {
			return b
		}
		errs = append(errs, err)
	}
	t.Fatalf("testbroker: mosquitto did not start: %v", errors.Join(errs...))
	return nil
}

// Kind reports which broker runs: "mochi" or "mosquitto".
func (b *Broker) Kind() string { return b.kind }

// Addr is the broker's address, "127.0.0.1:port". It stays the same across Kill and Restart.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL is the broker's address as an MQTT URL, "tcp://127.0.0.1:port".
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Kill stops the broker abruptly: SIGKILL for mosquitto; for mochi, every client connection is
// closed (without a DISCONNECT packet) and the server closed, so clients see their connections
// drop at once. Retained messages and sessions are lost, like a broker restarted without
// persistence. Kill returns once the broker is gone (the mosquitto process has been reaped);
// calling it on a killed broker does nothing.
func (b *Broker) Kill() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running {
		return
	}
	b.running = false
	switch {
	case b.mochi != nil:
		b.mochi.kill()
		b.mochi = nil
	case b.mosq != nil:
		if err := b.mosq.kill(); err != nil {
			b.t.Errorf("testbroker: killing mosquitto: %v", err)
		}
		b.mosq = nil
	}
}

// Restart starts a fresh broker of the same kind on the same port. It calls Kill first if the
// broker is still running. The bind is retried until a deadline (10 s), in case the port is not
// free yet; the test fails if the broker cannot be started. The fresh broker has no retained
// messages and no sessions.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Kill()
	deadline := time.Now().Add(startTimeout)
	if b.kind == KindMosquitto {
		var err error
		for {
			if err = b.startMosquitto(deadline); err == nil {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // back off between bind attempts
		}
		b.t.Fatalf("testbroker: restarting mosquitto on %s: %v", b.Addr(), err)
	}
	var err error
	for {
		var ln net.Listener
		if ln, err = net.Listen("tcp", b.Addr()); err == nil {
			b.startMochi(ln)
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // back off between bind attempts
	}
	b.t.Fatalf("testbroker: restarting mochi on %s: %v", b.Addr(), err)
}

// stop is the cleanup: it kills a running broker.
func (b *Broker) stop() {
	b.Kill()
}

// freePort asks the kernel for a free loopback port and releases it for the caller to use.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a listener the test is about to start (a bridge's HTTP server or
// embedded broker).
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// ---- mochi ----

// EnvMochiLog is the environment variable that makes the mochi broker log to standard error:
// "debug", "info", "warn" or "error" (the lowest level logged). By default it logs nothing.
const EnvMochiLog = "DOORBRIDGE_TEST_MOCHI_LOG"

// mochiLogger is the logger for mochi, as EnvMochiLog asks.
func mochiLogger() *slog.Logger {
	v := os.Getenv(EnvMochiLog)
	if v == "" {
		return slog.New(slog.DiscardHandler)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(v)); err != nil {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// mochiRun is one run of an in-process mochi-mqtt server.
type mochiRun struct {
	server *mqtt.Server
	ln     *mochifix.Listener
}

// startMochi starts mochi on ln, which it takes over.
func (b *Broker) startMochi(ln net.Listener) {
	b.t.Helper()
	server := mqtt.New(&mqtt.Options{
		Logger: mochiLogger(),
	})
	// mochifix works around mochi v2.7.9's bugs, as in the embedded broker.
	tl := mochifix.NewListener("testbroker", ln)
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		_ = ln.Close()
		b.t.Fatalf("testbroker: mochi auth hook: %v", err)
	}
	if err := server.AddHook(&mochifix.SessionHook{Server: server, Listeners: []*mochifix.Listener{tl}}, nil); err != nil {
		_ = ln.Close()
		b.t.Fatalf("testbroker: mochi session hook: %v", err)
	}
	if err := server.AddHook(new(mochifix.RetainHook), nil); err != nil { // the last hook
		_ = ln.Close()
		b.t.Fatalf("testbroker: mochi retain hook: %v", err)
	}
	if err := server.AddListener(tl); err != nil {
		_ = ln.Close()
		b.t.Fatalf("testbroker: mochi listener: %v", err)
	}
	if err := server.Serve(); err != nil {
		_ = server.Close()
		b.t.Fatalf("testbroker: mochi serve: %v", err)
	}
	b.mu.Lock()
	b.mochi = &mochiRun{server: server, ln: tl}
	b.running = true
	b.mu.Unlock()
}

// kill drops every connection abruptly, waits until mochi has finished with each, then closes
// the server. (Closing the server while a connection is still being set up trips the race
// detector in mochi v2.7.9: a WaitGroup Add concurrent with its Wait.)
func (r *mochiRun) kill() {
	r.ln.CloseAll(true) // reset, like a process that died
	r.ln.Wait()
	_ = r.server.Close()
}

// ---- mosquitto ----

// mosqRun is one run of a mosquitto process.
type mosqRun struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
	err    error         // cmd.Wait's result, set before exited is closed
}

// startMosquitto writes the config for b.port and starts mosquitto, waiting until the port
// accepts connections or deadline passes. It returns an error (and leaves nothing running) if
// mosquitto exits or the port does not open in time.
func (b *Broker) startMosquitto(deadline time.Time) error {
	conf := filepath.Join(b.dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n", b.port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "--- testbroker: starting %s on port %d\n", b.bin, b.port)
	cmd := exec.Command(b.bin, "-c", conf)
	cmd.Dir = b.dir
	cmd.Stdout = b.out
	cmd.Stderr = b.out
	if err := cmd.Start(); err != nil {
		return err
	}
	r := &mosqRun{cmd: cmd, exited: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()

	for {
		select {
		case <-r.exited:
			return fmt.Errorf("mosquitto on port %d exited: %v", b.port, r.err)
		default:
		}
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			select {
			case <-r.exited: // the port belonged to someone else
				return fmt.Errorf("mosquitto on port %d exited: %v", b.port, r.err)
			default:
			}
			b.mu.Lock()
			b.mosq = r
			b.running = true
			b.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			_ = r.kill()
			return fmt.Errorf("mosquitto on port %d not accepting connections by the deadline: %v", b.port, err)
		}
		select {
		case <-r.exited:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (r *mosqRun) kill() error {
	select {
	case <-r.exited:
		return nil
	default:
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-r.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d still not reaped 10 s after SIGKILL", r.cmd.Process.Pid)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Bytes is a copy of the contents.
func (w *lockedBuffer) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// String is the contents as a string.
func (w *lockedBuffer) String() string { return string(w.Bytes()) }
