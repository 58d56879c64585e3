// Package power tells whether mains power is present, from sources such as
// a UPS behind NUT's upsd or a Linux power-supply directory in sysfs.
//
// A Source answers one question per Poll: is mains power lost? Watch polls a
// source and turns its readings (and its failures) into a stream of state
// changes. The package knows nothing of doors or MQTT: the caller decides what
// a loss of power means.
package power

import "context"

// Status is one reading of a source, as reported by Watch.
type Status struct {
	// Source is the Name of the source.
	Source string
	// Lost is true when mains power is lost, or when the source could not be
	// read for longer than Watch's timeout (then Err is set).
	Lost bool
	// Err is the last read error when the source has not been readable for
	// longer than the timeout; nil when Lost comes from a good reading.
	Err error
	// Detail is the raw reading behind Lost, e.g. `ups.status "OB LB"`.
	// It is empty when Err is set.
	Detail string
}

// Source is something that knows whether mains power is present. It is
// polled by Watch, from one goroutine at a time.
type Source interface {
	// Name identifies the source in logs, e.g. "nut:ups1@127.0.0.1:3493".
	Name() string
	// Poll reads the source once. lost is true when mains power is lost;
	// detail is the raw reading, for logs. A source that cannot be read
	// returns an error (and lost is then meaningless). Poll must return
	// soon after ctx ends.
	Poll(ctx context.Context) (lost bool, detail string, err error)
}
