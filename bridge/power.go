package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/doorbridge/doorbridge/config"
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
				p, err := (&config.Config{MQTT: config.MQTT{PasswordFile: pc.PasswordFile}}).MQTTPassword()
				if err != nil {
					return fmt.Errorf("power source %q: %w", pc.Name, err)
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
			in, err := b.openInput(pc.Line())
			if err != nil {
				return fmt.Errorf("power source %q: %w", pc.Name, err)
			}
			src = inputPowerSource{name: pc.Name, cfg: pc.Line(), in: in}
		default:
			continue
		}
		name := pc.Name
		go power.Watch(ctx, src, pc.PollInterval, pc.Timeout, func(s power.Status) {
			detail := s.Detail
			if s.Err != nil {
				detail = s.Err.Error()
			}
			b.ReportPower(name, s.Lost, detail)
		})
		b.log.Info("power source", "name", name, "type", pc.Type)
	}
	return nil
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
