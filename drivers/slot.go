package drivers

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/doorbridge/doorbridge/config"
)

// Slot is one configured driver: its options decoded when the slot is
// made (a bad option is a config error, found before any hardware is
// touched), the driver opened on first use and closed once. The bridge and
// `doorbridge test-door` open drivers through it, so that both open a board
// the same way.
type Slot struct {
	id   string
	spec Spec // nil: given opened (OpenedSlot)
	log  *slog.Logger

	mu     sync.Mutex
	drv    Driver
	closed bool
}

// NewSlot decodes driver entry dc. Its logger is log with driver=<id>,
// added here once (Spec.Open).
func NewSlot(dc config.Driver, log *slog.Logger) (*Slot, error) {
	spec, err := Decode(dc.Type, dc.Options)
	if err != nil {
		return nil, fmt.Errorf("driver %q: %w", dc.ID, err)
	}
	return &Slot{id: dc.ID, spec: spec, log: log.With("driver", dc.ID)}, nil
}

// OpenedSlot is the slot of driver d, already open (tests supply drivers
// so).
func OpenedSlot(id string, d Driver, log *slog.Logger) *Slot {
	return &Slot{id: id, drv: d, log: log.With("driver", id)}
}

// ID is the driver's id.
func (s *Slot) ID() string { return s.id }

// Get returns the driver, opening it first if it is not open yet. A driver
// that cannot be opened is tried again by the next Get.
func (s *Slot) Get() (Driver, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, fmt.Errorf("driver %q: closed", s.id)
	case s.drv != nil:
		return s.drv, nil
	}
	d, err := s.spec.Open(s.id, s.log)
	if err != nil {
		return nil, fmt.Errorf("driver %q: %w", s.id, err)
	}
	s.log.Info("driver opened")
	s.drv = d
	return d, nil
}

// Opened returns the driver if it is open, else nil.
func (s *Slot) Opened() Driver {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drv
}

// Close closes the driver if it is open; Get fails from then on. It does
// not hold the slot while the driver closes: a hung board's Close must not
// block Get's callers, who then learn that the slot is closed.
func (s *Slot) Close() error {
	s.mu.Lock()
	d := s.drv
	s.closed, s.drv = true, nil
	s.mu.Unlock()
	if d == nil {
		return nil
	}
	return d.Close()
}
