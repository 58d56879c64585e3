package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// logLines is a slog handler that keeps every record as one line, so that
// tests can check what the bridge logged (and that it logged it once).
type logLines struct {
	store *logStore
	attrs string
}

type logStore struct {
	mu    sync.Mutex
	lines []string
	tee   bool
}

func newLogLines(t *testing.T) (*slog.Logger, *logStore) {
	s := &logStore{tee: os.Getenv("DOORBRIDGE_TEST_LOG") != ""}
	t.Cleanup(func() {
		if t.Failed() && !s.tee {
			t.Logf("bridge log:\n%s", strings.Join(s.all(), "\n"))
		}
	})
	return slog.New(logLines{store: s}), s
}

func (h logLines) Enabled(context.Context, slog.Level) bool { return true }

func (h logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s", r.Level, r.Message, h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
		return true
	})
	h.store.mu.Lock()
	h.store.lines = append(h.store.lines, b.String())
	h.store.mu.Unlock()
	if h.store.tee {
		fmt.Fprintln(os.Stderr, b.String())
	}
	return nil
}

func (h logLines) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
	}
	return logLines{store: h.store, attrs: b.String()}
}

func (h logLines) WithGroup(string) slog.Handler { return h }

func (s *logStore) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// count is the number of lines holding every one of parts.
func (s *logStore) count(parts ...string) int {
	n := 0
	for _, l := range s.all() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// waitCount waits until at least n lines hold every one of parts.
func (s *logStore) waitCount(t *testing.T, n int, parts ...string) {
	t.Helper()
	testbroker.Eventually(t, wait, func() bool { return s.count(parts...) >= n },
		"%d log line(s) with %q", n, parts)
}

// linked is a bridge on sim relays run against brokers the test set up
// itself (TLS, several brokers, an embedded broker with users).
type linked struct {
	t   *testing.T
	cfg *config.Config
	b   *Bridge
	sim *sim.Driver
	log *logStore
}

// runLinked validates cfg, then opens and runs a bridge on it until the end
// of the test. A nil log means one of newLogLines.
func runLinked(t *testing.T, cfg *config.Config) *linked {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	if err := cfg.CheckFiles(); err != nil {
		t.Fatalf("test config files: %v", err)
	}
	log, store := newLogLines(t)
	l := &linked{t: t, cfg: cfg, sim: sim.New(sim.Options{}), log: store}
	b, err := Open(cfg, Options{
		Log:          log,
		Drivers:      map[string]drivers.Driver{"sim": l.sim},
		TickInterval: 20 * time.Millisecond,
		Version:      "test",
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	l.b = b
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	return l
}

func (l *linked) power(ch string) bool { return l.sim.Levels()[ch] }

func (l *linked) waitPower(ch string, want bool, within time.Duration, why string) {
	l.t.Helper()
	testbroker.Eventually(l.t, within, func() bool { return l.power(ch) == want },
		"relay %s: want power %v: %s", ch, want, why)
}

// connected reports whether the loop sees a healthy link.
func (l *linked) connected() bool {
	s := l.b.State()
	return s != nil && s.Connected
}
