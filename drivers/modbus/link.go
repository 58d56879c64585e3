package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/simonvetter/modbus"
)

// Reconnect backoff after a failed connect.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// maxSpan is the most discrete inputs one request reads (Modbus limit 2000);
// maxGap is the widest run of unused addresses a poll request reads through.
const (
	maxSpan = 2000
	maxGap  = 16
)

// link owns the Modbus client. Only the worker goroutine uses it (and New,
// before the worker starts).
type link struct {
	conf     modbus.ClientConfiguration
	unit     uint8
	log      *slog.Logger
	client   *modbus.ModbusClient
	backoff  time.Duration
	retryAt  time.Time
	lastErr  error // why the link is down; nil while up
	failures int   // consecutive failed connects
}

func newLink(o Options, log *slog.Logger) *link {
	return &link{
		conf: modbus.ClientConfiguration{
			URL:     o.URL,
			Speed:   uint(o.Speed),
			Timeout: o.Timeout,
			Logger:  slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		unit: uint8(o.UnitID),
		log:  log,
	}
}

// get returns the connected client, connecting first if needed. While a
// failed connect's backoff runs it fails at once.
func (l *link) get() (*modbus.ModbusClient, error) {
	if l.client != nil {
		return l.client, nil
	}
	if wait := time.Until(l.retryAt); wait > 0 {
		return nil, fmt.Errorf("not connected, next attempt in %s: %w", wait.Round(time.Millisecond), l.lastErr)
	}
	mc, err := modbus.NewClient(&l.conf)
	if err == nil {
		if err = mc.Open(); err == nil {
			err = mc.SetUnitId(l.unit)
		}
		if err != nil {
			_ = mc.Close()
		}
	}
	if err != nil {
		l.failures++
		l.backoff = min(max(2*l.backoff, minBackoff), maxBackoff)
		l.retryAt = time.Now().Add(l.backoff)
		l.lastErr = fmt.Errorf("connect: %w", err)
		lvl := slog.LevelDebug
		if l.failures == 1 {
			lvl = slog.LevelWarn
		}
		l.log.Log(context.Background(), lvl, "modbus connect failed", "url", l.conf.URL, "err", err, "retry_in", l.backoff)
		return nil, l.lastErr
	}
	if l.lastErr != nil {
		l.log.Info("modbus reconnected", "url", l.conf.URL, "after_failures", l.failures)
	}
	l.client, l.lastErr, l.failures, l.backoff, l.retryAt = mc, nil, 0, 0, time.Time{}
	return mc, nil
}

// drop closes the client after a link error; the next operation reconnects.
func (l *link) drop(err error) {
	if l.client == nil {
		return
	}
	l.log.Warn("modbus link lost", "url", l.conf.URL, "err", err)
	_ = l.client.Close()
	l.client, l.lastErr = nil, err
}

func (l *link) close() {
	if l.client != nil {
		_ = l.client.Close()
		l.client = nil
	}
}

// isLinkError reports whether err means the link may be broken (timeout, I/O
// or framing error), as opposed to an exception the board answered with.
func isLinkError(err error) bool {
	for _, e := range []error{
		modbus.ErrIllegalFunction, modbus.ErrIllegalDataAddress, modbus.ErrIllegalDataValue,
		modbus.ErrServerDeviceFailure, modbus.ErrAcknowledge, modbus.ErrServerDeviceBusy,
		modbus.ErrMemoryParityError, modbus.ErrGWPathUnavailable, modbus.ErrGWTargetFailedToRespond,
	} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// run is the worker: it serializes operations and polls.
func (d *Driver) run() {
	defer close(d.done)
	defer d.link.close()
	tick := time.NewTicker(d.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-d.quit:
			return
		case o := <-d.ops:
			d.exec(o)
		case <-tick.C:
			d.poll()
		}
	}
}

func (d *Driver) exec(o *op) {
	if time.Now().After(o.deadline) {
		o.done <- errors.New("expired before it ran")
		return
	}
	mc, err := d.link.get()
	if err == nil {
		if err = o.run(mc); err != nil && isLinkError(err) {
			d.link.drop(err)
			err = fmt.Errorf("link lost (reconnecting on next use): %w", err)
		}
	}
	o.done <- err
}

// span is a run of discrete input addresses read in one request.
type span struct{ start, n uint16 }

// spans groups sorted addresses into requests.
func spans(addrs []uint16) []span {
	var out []span
	for _, a := range addrs {
		if k := len(out) - 1; k >= 0 {
			s := &out[k]
			last := s.start + s.n - 1
			if int(a)-int(last) <= maxGap && int(a)-int(s.start) < maxSpan {
				s.n = a - s.start + 1
				continue
			}
		}
		out = append(out, span{a, 1})
	}
	return out
}

// poll reads every opened discrete input into the cache.
func (d *Driver) poll() {
	d.mu.Lock()
	addrs := make([]uint16, 0, len(d.inputs))
	for a := range d.inputs {
		addrs = append(addrs, a)
	}
	d.mu.Unlock()
	if len(addrs) == 0 {
		return
	}
	slices.Sort(addrs)
	mc, linkErr := d.link.get()
	for _, s := range spans(addrs) {
		err := linkErr
		var vals []bool
		if err == nil {
			vals, err = mc.ReadDiscreteInputs(s.start, s.n)
			if err != nil && isLinkError(err) {
				d.link.drop(err)
				linkErr = err
			}
		}
		d.store(s, vals, err, time.Now())
	}
}

// store records a read of span s (vals) or its failure.
func (d *Driver) store(s span, vals []bool, err error, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range s.n {
		in, ok := d.inputs[s.start+i]
		if !ok {
			continue
		}
		if err != nil {
			in.err = err
			continue
		}
		in.value, in.at, in.err = vals[i], at, nil
	}
}
