package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/secretfile"
	"github.com/doorbridge/doorbridge/power"
)

// startPowerSources starts a watcher for every polled power source (nut,
// sysfs). MQTT power sources are handled by the loop like alarm topics.
func (b *Bridge) startPowerSources(ctx context.Context) error {
	for _, pc := range b.cfg.Power {
		var src power.Source
		switch pc.Type {
		case config.PowerNUT:
			password := ""
			if pc.PasswordFile != "" {
				p, err := secretfile.Read(pc.PasswordFile)
				if err != nil {
					return fmt.Errorf("power source %q: password_file: %w", pc.Name, err)
				}
				password = p
			}
			n, err := power.NewNUT(power.NUTOptions{Host: pc.Host, Port: pc.Port, UPS: pc.UPS, Username: pc.Username, Password: password, DialTimeout: min(2*time.Second, pc.Timeout)})
			if err != nil {
				return fmt.Errorf("power source %q: %w", pc.Name, err)
			}
			src = n
		case config.PowerSysfs:
			src = power.NewSysfs(pc.Path)
		case config.PowerInput:
			ps := &inputPowerSource{name: pc.Name, cfg: pc.Line(), open: b.openInput}
			if in, err := b.openInput(pc.Line()); err != nil {
				// Start best effort: Poll opens it later; lost meanwhile.
				b.log.Error("power source cannot be opened: power counts as lost until it can", "source", pc.Name, "err", err)
			} else {
				ps.in.Store(&in)
			}
			src = ps
		default:
			continue
		}
		name := pc.Name
		src = guardedSource{Source: src, b: b} // Watch polls in goroutines of its own
		go b.guard("power "+name, func() {
			power.Watch(ctx, src, pc.PollInterval, pc.Timeout, func(s power.Status) {
				detail := s.Detail
				if s.Err != nil {
					detail = s.Err.Error()
				}
				b.ReportPower(name, s.Lost, detail)
			})
		})
		b.log.Info("power source", "name", name, "type", pc.Type)
	}
	return nil
}

// guardedSource is a power source whose Poll forces every relay off if it
// panics (Bridge.guard), whichever goroutine power.Watch runs it in.
type guardedSource struct {
	power.Source
	b *Bridge
}

func (s guardedSource) Poll(ctx context.Context) (bool, string, error) {
	defer s.b.recoverFatal("power " + s.Name())
	return s.Source.Poll(ctx)
}

// mqttPower is a power source read from an MQTT topic. Its reading holds
// for the source's timeout after the message that carried it (R24): a
// publisher must repeat its value at least that often. A retained value
// proves nothing about its publisher, which may be long dead: it counts as
// a reading at the time it arrives, so it is trusted for one timeout, not
// forever.
type mqttPower struct {
	cfg   config.PowerSource
	known bool      // a message came on this connection
	at    time.Time // when the last one came
}

// resetMQTTPower forgets what MQTT power sources said on the last
// connection: each counts as lost until it reports on this one (R24).
func (l *loop) resetMQTTPower() {
	for i := range l.mqttPower {
		p := &l.mqttPower[i]
		p.known, p.at = false, time.Time{}
		l.setPower(evPower{source: p.cfg.Name, lost: true, detail: "no value yet on this connection"})
	}
}

func (l *loop) onPowerMessage(p *mqttPower, e evMessage) {
	p.known, p.at = true, l.now()
	switch string(e.payload) {
	case p.cfg.PayloadOK:
		l.onPower(evPower{source: p.cfg.Name, lost: false, detail: string(e.payload)})
	case p.cfg.PayloadLost:
		l.onPower(evPower{source: p.cfg.Name, lost: true, detail: string(e.payload)})
	default:
		// Unknown means lost: the safe reading.
		l.onPower(evPower{source: p.cfg.Name, lost: true, detail: fmt.Sprintf("unexpected payload %q", truncate(e.payload, 40))})
	}
}

// checkMQTTPower raises the power hazard for an MQTT source whose last
// reading is older than its timeout (a source without any reading on this
// connection is lost already).
func (l *loop) checkMQTTPower(now time.Time) {
	for i := range l.mqttPower {
		p := &l.mqttPower[i]
		if p.known && now.Sub(p.at) > p.cfg.Timeout && !l.powerLost[p.cfg.Name] {
			l.onPower(evPower{source: p.cfg.Name, lost: true, detail: fmt.Sprintf("no value on %s for %v", p.cfg.Topic, p.cfg.Timeout)})
		}
	}
}
