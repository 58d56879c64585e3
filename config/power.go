package config

import (
	"fmt"
	"strings"
	"time"
)

// Power source types.
const (
	PowerNUT   = "nut"   // a NUT upsd: ups.status OB or LB means mains lost
	PowerSysfs = "sysfs" // /sys/class/power_supply/<name>/online
	PowerMQTT  = "mqtt"  // a topic with payloads for ok and lost
	PowerInput = "input" // a driver input line: active = power good (a PSU's "AC OK" contact)
)

// PowerSource is one source of the power hazard. Sources are OR-ed: any
// source that reports mains lost, or cannot be read for longer than its
// timeout, releases the fail-safe doors.
type PowerSource struct {
	Type string `koanf:"type"`
	// Name labels the source in logs and metrics (default: type and address).
	Name string `koanf:"name"`

	// nut
	Host         string `koanf:"host"`
	Port         int    `koanf:"port"`
	UPS          string `koanf:"ups"`
	Username     string `koanf:"username"`
	PasswordFile string `koanf:"password_file"`

	// sysfs: a power-supply directory such as /sys/class/power_supply/AC
	Path string `koanf:"path"`

	// mqtt
	Topic       string `koanf:"topic"`
	PayloadOK   string `koanf:"payload_ok"`
	PayloadLost string `koanf:"payload_lost"`

	// input: a line of a driver, active (high unless active_low) while
	// mains power is good.
	Driver    string `koanf:"driver"`
	Channel   string `koanf:"channel"`
	ActiveLow bool   `koanf:"active_low"`
	Pull      string `koanf:"pull"`

	PollInterval time.Duration `koanf:"poll_interval"`
	Timeout      time.Duration `koanf:"timeout"`
}

// MaxHoldOnBattery is how long a fail-safe door with power_release: false
// may stay locked on battery: NFPA 72 caps egress locks held on secondary
// power at 10 minutes.
const MaxHoldOnBattery = 10 * time.Minute

func (c *Config) applyPowerDefaults() {
	for i := range c.Power {
		p := &c.Power[i]
		if p.PollInterval == 0 {
			p.PollInterval = 500 * time.Millisecond
		}
		if p.Timeout == 0 {
			p.Timeout = 5 * time.Second
		}
		switch p.Type {
		case PowerNUT:
			if p.Host == "" {
				p.Host = "127.0.0.1"
			}
			if p.Port == 0 {
				p.Port = 3493
			}
		case PowerMQTT:
			if p.PayloadOK == "" {
				p.PayloadOK = "ON"
			}
			if p.PayloadLost == "" {
				p.PayloadLost = "OFF"
			}
		}
		if p.Name == "" {
			switch p.Type {
			case PowerNUT:
				p.Name = fmt.Sprintf("nut:%s@%s:%d", p.UPS, p.Host, p.Port)
			case PowerSysfs:
				p.Name = "sysfs:" + p.Path
			case PowerMQTT:
				p.Name = "mqtt:" + p.Topic
			case PowerInput:
				p.Name = "input:" + p.Line().Name()
			default:
				p.Name = p.Type
			}
		}
	}
	for i := range c.Doors {
		if c.Doors[i].PowerRelease == nil {
			t := true
			c.Doors[i].PowerRelease = &t
		}
	}
}

// Line returns an input power source's line.
func (p *PowerSource) Line() Line {
	return Line{Driver: p.Driver, Channel: p.Channel, ActiveLow: p.ActiveLow, Pull: p.Pull}
}

func (c *Config) validatePower(v *validator, driverIDs map[string]bool, lines map[string]string) {
	names := map[string]bool{}
	for i, p := range c.Power {
		key := fmt.Sprintf("power[%d]", i)
		if names[p.Name] {
			v.add(key+".name", "duplicate power source name %q", p.Name)
		}
		names[p.Name] = true
		switch p.Type {
		case PowerNUT:
			if p.UPS == "" {
				v.add(key+".ups", "must name the UPS as upsd knows it (e.g. ups1; see upsc -l)")
			}
			if p.Port < 1 || p.Port > 65535 {
				v.add(key+".port", "%d is not a TCP port", p.Port)
			}
		case PowerSysfs:
			if p.Path == "" {
				v.add(key+".path", "must be a power-supply directory such as /sys/class/power_supply/AC")
			}
		case PowerMQTT:
			switch {
			case p.Topic == "":
				v.add(key+".topic", "must not be empty")
			case strings.ContainsAny(p.Topic, "+#"):
				// One source is one topic: under a wildcard, which device's
				// report is the power? (It would never match and hold a
				// power hazard for good.)
				v.add(key+".topic", "%q has an MQTT wildcard (+ or #): a power source is one exact topic; list one source per topic", p.Topic)
			}
			if p.PayloadOK == p.PayloadLost {
				v.add(key+".payload_ok", "%q equals payload_lost; ok and lost must differ", p.PayloadOK)
			}
		case PowerInput:
			c.validateLine(v, key, p.Line(), driverIDs, lines)
		default:
			v.add(key+".type", "%q is not a power source type (valid: nut, sysfs, mqtt, input)", p.Type)
		}
		if p.Pull != "" && (p.Type == PowerNUT || p.Type == PowerSysfs || p.Type == PowerMQTT) {
			v.add(key+".pull", "%q: pull applies to a power source of type input only (a driver's input line); leave it out of a %s source", p.Pull, p.Type)
		}
		if p.PollInterval < 50*time.Millisecond || p.PollInterval > 10*time.Second {
			v.add(key+".poll_interval", "%v must be between 50ms and 10s", p.PollInterval)
		}
		if p.Timeout < p.PollInterval || p.Timeout > 10*time.Second {
			v.add(key+".timeout", "%v must be at least poll_interval (%v) and at most 10s (NFPA 72's budget)", p.Timeout, p.PollInterval)
		}
	}
	for i, d := range c.Doors {
		if d.PowerRelease != nil && !*d.PowerRelease && d.FailMode != FailSafe {
			v.add(fmt.Sprintf("doors[%d].power_release", i), "only a fail_safe door may set power_release: false (it holds a maglock locked on its own battery for at most 10 minutes)")
		}
	}
}
