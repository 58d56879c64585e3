package drivers_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
)

// A slot decodes its entry at once, opens the driver on the first Get and
// not again, names the driver once in the driver's log lines, and refuses
// Get after Close.
func TestSlot(t *testing.T) {
	var log strings.Builder
	s, err := drivers.NewSlot(config.Driver{ID: "bank", Type: "sim"}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Opened() != nil {
		t.Fatal("opened before its first Get")
	}
	d1, err := s.Get()
	if err != nil {
		t.Fatal(err)
	}
	if d2, err := s.Get(); err != nil || d2 != d1 || s.Opened() != d1 {
		t.Fatalf("second Get = %v, %v; want the driver opened first", d2, err)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "sim driver ready") || !strings.Contains(lines[1], "driver opened") {
		t.Fatalf("want one ready and one opened line:\n%s", log.String())
	}
	for _, l := range lines {
		if strings.Count(l, " driver=bank") != 1 {
			t.Errorf("want driver=bank once: %s", l)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(); err == nil || err.Error() != `driver "bank": closed` {
		t.Errorf("Get after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Bad options are the slot's error, naming the driver; nothing is opened.
func TestSlotBadEntry(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := drivers.NewSlot(config.Driver{ID: "x", Type: "nope"}, discard)
	if err == nil || !strings.HasPrefix(err.Error(), `driver "x": unknown driver type "nope" (known: `) {
		t.Errorf("unknown type: %v", err)
	}
	_, err = drivers.NewSlot(config.Driver{ID: "y", Type: "sim", Options: map[string]any{"colour": "red"}}, discard)
	if err == nil || !strings.HasPrefix(err.Error(), `driver "y": `) || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown option: %v", err)
	}
}

// A driver given opened is the slot's driver, and closed by its Close.
func TestOpenedSlot(t *testing.T) {
	d := sim.New(sim.Options{})
	s := drivers.OpenedSlot("bank", d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got, err := s.Get(); err != nil || got != d || s.ID() != "bank" {
		t.Fatalf("Get = %v, %v; ID %q", got, err, s.ID())
	}
	if err := s.Close(); err != nil || s.Opened() != nil {
		t.Fatalf("Close: %v; Opened %v", err, s.Opened())
	}
}
