package bridge

// The loop's side of door inputs: opening the lines, reading them on every
// evaluation, feeding the pure logic in policy/doorinputs.go and acting on
// what it says (events, REX for the policy, early relock, retained flags).

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// Door input topics, under B/N/<door>/ (mqttapi). All retained, ON/OFF;
// the contact is "None" (HA: unknown) while it cannot be read.
const (
	leafContact        = mqttapi.DoorContact
	leafForced         = mqttapi.DoorForced
	leafHeld           = mqttapi.DoorHeld
	leafReleaseFailure = mqttapi.DoorReleaseFailure
)

const payloadUnknown = mqttapi.Unknown

// doorIO is one door's input lines and their logic.
type doorIO struct {
	contact, rex, lockSense *inputLine
	logic                   *DoorInputs
	out                     DoorInputOutcome // of the last reading
	// B/N/<door>/<leaf> topics, built once: publishState runs every tick.
	contactTopic, forcedTopic, heldTopic, releaseFailureTopic string
}

// slot is where the loop keeps input name (config.Door.Inputs): each
// input has its own role in DoorInputSample. An input without a slot
// panics at start (TestEveryConfigInputHasASlot catches it first).
func (io *doorIO) slot(name string) **inputLine {
	switch name {
	case config.InputContact:
		return &io.contact
	case config.InputRex:
		return &io.rex
	case config.InputLockSense:
		return &io.lockSense
	}
	panic("bridge: door input " + name + " has no place in doorIO")
}

// inputLine is one input.
type inputLine struct {
	name    string // config.Door.Inputs: contact, rex, lock_sense
	cfg     config.Line
	in      drivers.Input // nil: not opened yet (its board did not answer)
	openErr error         // why in is nil
	late    atomic.Pointer[drivers.Input]
	failing bool // the last read failed (logged once per change)
}

// openDoorInputs opens every door's input lines, before any network
// traffic. A line that cannot be opened (its board does not answer) reads
// as unknown and is opened again in the background: start best effort.
func (b *Bridge) openDoorInputs() {
	for _, dc := range b.cfg.Drivers {
		b.m.driverErrors.WithLabelValues(dc.ID) // every driver's series exists at 0
	}
	for _, d := range b.doors {
		if !d.cfg.HasInputs() {
			continue
		}
		io := &doorIO{}
		for _, x := range d.cfg.Inputs() {
			if x.Line == nil {
				continue
			}
			ln := &inputLine{name: x.Name, cfg: *x.Line}
			if ln.in, ln.openErr = b.openDoorInput(*x.Line); ln.openErr != nil {
				b.log.Error("door input cannot be opened: unknown until it can", "door", d.cfg.ID, "input", x.Name, "err", ln.openErr)
				go b.guard("input "+d.cfg.ID, func() { b.reopenInput(ln) })
			}
			*io.slot(x.Name) = ln
		}
		io.logic = NewDoorInputs(DoorInputTimes{
			Mode: d.mode, RexTime: d.cfg.EffectiveRexTime(), UnlockTime: d.cfg.UnlockTime,
			HeldOpenTime: d.cfg.EffectiveHeldOpenTime(), LockSenseDelay: config.LockSenseDelay,
		})
		prefix := b.topics.prefix + "/" + d.cfg.ID + "/"
		io.contactTopic, io.forcedTopic = prefix+leafContact, prefix+leafForced
		io.heldTopic, io.releaseFailureTopic = prefix+leafHeld, prefix+leafReleaseFailure
		d.io = io
	}
}

// reopenInput opens ln again every openRetry until it works, and hands it
// to the loop (readInput takes it).
func (b *Bridge) reopenInput(ln *inputLine) {
	t := time.NewTicker(openRetry)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
		}
		if in, err := b.openDoorInput(ln.cfg); err == nil {
			ln.late.Store(&in)
			return
		}
	}
}

// openInput opens one input line of a configured driver.
func (b *Bridge) openInput(l config.Line) (drivers.Input, error) {
	slot := b.drivers[l.Driver]
	if slot == nil {
		return nil, fmt.Errorf("unknown driver %q", l.Driver)
	}
	drv, err := slot.Get()
	if err != nil {
		return nil, err
	}
	return drivers.OpenInput(drv, l)
}

// readInput reads one line as a Sense. A failed read is unknown; it is
// logged when a line starts failing and when it works again, not per read.
func (l *loop) readInput(d *door, ln *inputLine, origin string) Sense {
	if ln == nil {
		return SenseUnknown
	}
	if ln.in == nil {
		if p := ln.late.Load(); p != nil {
			ln.in, ln.openErr = *p, nil
		}
	}
	var v bool
	err := ln.openErr
	if ln.in != nil {
		v, err = ln.in.Read()
	}
	if failing := err != nil; failing != ln.failing {
		ln.failing = failing
		if failing {
			l.log.Error("door input cannot be read: treated as unknown", "door", d.cfg.ID, "input", ln.name, "err", err)
			l.recordLogged(auditEvent{Kind: "input", Door: d.cfg.ID, Outcome: "unreadable", Detail: ln.name + ": " + err.Error(), Origin: origin})
		} else {
			l.log.Info("door input readable again", "door", d.cfg.ID, "input", ln.name)
			l.recordLogged(auditEvent{Kind: "input", Door: d.cfg.ID, Outcome: "readable", Detail: ln.name, Origin: origin})
		}
	}
	return SenseOf(v, ln.cfg.ActiveLow, err)
}

// stepInputs reads d's inputs, runs its input logic with the hazards hz
// that apply to it, and acts on the outcome: door events, the early relock
// of a momentary OPEN. It returns whether a REX unlock is running, for the
// policy. A door without inputs has none.
func (l *loop) stepInputs(d *door, now time.Time, hz Hazards, origin string) bool {
	io := d.io
	if io == nil {
		return false
	}
	prev := io.out
	out := io.logic.Step(DoorInputSample{
		Now:       now,
		Contact:   l.readInput(d, io.contact, origin),
		Rex:       l.readInput(d, io.rex, origin),
		LockSense: l.readInput(d, io.lockSense, origin),
		Power:     d.power,
		Locked:    d.locked(),
		Momentary: !d.momentaryUntil.IsZero(),
		Hazard:    hz.Any(),
		Lockdown:  l.lockdown,
		// A hazard releases every fail-safe door that it applies to (a
		// door held on its own battery does not see the power hazard).
		Released: hz.Any() && d.mode == FailSafe,
	})
	io.out = out
	if out.Rex && !prev.Rex {
		l.log.Info("exit button (REX): door unlocked locally", "door", d.cfg.ID)
		l.recordLogged(auditEvent{Kind: "input", Door: d.cfg.ID, Outcome: "rex", Origin: origin})
	}
	if out.EndMomentary && !d.momentaryUntil.IsZero() {
		l.log.Info("door opened and closed: momentary OPEN ends early", "door", d.cfg.ID)
		d.momentaryUntil = time.Time{}
	}
	if out.Open != prev.Open && out.ContactKnown {
		l.log.Debug("door contact", "door", d.cfg.ID, "open", out.Open)
	}
	for _, ev := range out.Events {
		l.log.Warn("door event", "door", d.cfg.ID, "event", ev)
		l.recordLogged(auditEvent{Kind: "input", Door: d.cfg.ID, Outcome: ev, Origin: origin})
		l.doorEvent(d, ev)
	}
	return out.Rex
}

// publishInputs publishes d's retained input states.
func (l *loop) publishInputs(d *door) {
	io := d.io
	if io == nil {
		return
	}
	if io.contact != nil {
		contact := payloadUnknown
		if io.out.ContactKnown {
			contact = onOff(io.out.Open)
		}
		l.publishRetained(io.contactTopic, contact)
		l.publishRetained(io.forcedTopic, onOff(io.out.Forced))
		l.publishRetained(io.heldTopic, onOff(io.out.Held))
	}
	if io.lockSense != nil {
		l.publishRetained(io.releaseFailureTopic, onOff(io.out.ReleaseFailure))
	}
}

// countDriverError counts one failed relay write on d's driver.
func (l *loop) countDriverError(d *door) {
	l.b.m.driverErrors.WithLabelValues(d.cfg.Relay.Driver).Inc()
}

// inputPowerSource is a power-good input line: active while mains are good.
// A line whose board could not be opened at start is opened by Poll (power
// is reported lost meanwhile, after the source's timeout).
type inputPowerSource struct {
	name string
	cfg  config.Line
	open func(config.Line) (drivers.Input, error)
	in   atomic.Pointer[drivers.Input]
}

// Name implements power.Source.
func (s *inputPowerSource) Name() string { return s.name }

// Poll implements power.Source. A read error is not a reading: power.Watch
// keeps the last state and reports power lost after the source's timeout.
func (s *inputPowerSource) Poll(context.Context) (bool, string, error) {
	p := s.in.Load()
	if p == nil {
		in, err := s.open(s.cfg)
		if err != nil {
			return false, "", err
		}
		s.in.Store(&in)
		p = &in
	}
	v, err := (*p).Read()
	if err != nil {
		return false, "", err
	}
	if SenseOf(v, s.cfg.ActiveLow, nil) == SenseActive {
		return false, "power good", nil
	}
	return true, "power-good input inactive", nil
}
