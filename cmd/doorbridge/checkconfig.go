package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/gpio"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	skipFiles := fs.Bool("skip-files", false, "do not read the password, certificate and key files the config names, nor look for the hardware (checking it away from the bridge)")
	skipHardware := fs.Bool("skip-hardware", false, "do not look for the GPIO chips, I2C buses and serial devices the config names")
	if code, done := parseFlags(fs, args, "check-config [-c FILE] [-skip-files] [-skip-hardware]"); done {
		return code
	}
	cfg, err := config.Load(config.Path(*file))
	if err == nil && !*skipFiles {
		err = cfg.CheckFiles()
	}
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: invalid config:\n%v\n", err)
		return 1
	}
	if !*skipFiles && !*skipHardware {
		problems, notes := probeHardware(cfg)
		if len(problems) > 0 {
			fmt.Fprintf(stderr, "doorbridge: %s: hardware not found on this machine:\n  %s\n", cfg.File, strings.Join(problems, "\n  "))
			return 1
		}
		defer printNotes(stdout, notes)
	}
	fmt.Fprintf(stdout, "%s: valid. Bridge %q, %d door(s).\n", cfg.File, cfg.Bridge.ID, len(cfg.Doors))
	fmt.Fprintf(stdout, "Broker: %s\n", brokerSummary(cfg))
	sourcesSummary(stdout, cfg)
	// Where the latch lives depends on the environment when state_dir is
	// empty: say which directory this environment resolves to.
	fmt.Fprintf(stdout, "State: %s (the fire release latch, lockdown, the battery budget; it must survive a reboot)\n\n", cfg.Bridge.StateDir)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOOR\tFAIL MODE\tRELAY\tBROKER LOST\tPOWER LOST\tFIRE ALARM")
	for _, d := range cfg.Doors {
		relay := d.Relay.Label()
		onHazard := "unlocks (maglock released)"
		if d.FailMode == config.FailSecure {
			onHazard = "stays locked (strike unpowered)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.FailMode, relay, onHazard, powerLost(cfg, &d, onHazard), onHazard)
	}
	tw.Flush()
	warnings := append(configWarnings(cfg), gpioRelayWarnings(cfg, gpio.ReleasedOutputs(sysRoot))...)
	if len(warnings) > 0 {
		fmt.Fprintln(stdout)
		for _, w := range warnings {
			fmt.Fprintln(stdout, "warning:", w)
		}
	}
	return 0
}

func printNotes(w io.Writer, notes []string) {
	if len(notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// brokerSummary says how the bridge reaches its broker, without secrets.
func brokerSummary(cfg *config.Config) string {
	m := &cfg.MQTT
	urls := m.BrokerURLs()
	if len(urls) == 0 {
		e := &cfg.EmbeddedBroker
		var on []string
		if e.Listen != "" {
			on = append(on, e.Listen)
		}
		if e.Socket != "" {
			on = append(on, e.Socket+" (Unix socket, mode 0660)")
		}
		s := "embedded, listening on " + strings.Join(on, " and ")
		if e.TLSListen != "" {
			s += " and " + e.TLSListen + " (TLS)"
		}
		if len(e.Users) > 0 {
			return fmt.Sprintf("%s; %d user(s), login required", s, len(e.Users))
		}
		if e.Listen == "" {
			return s + "; no login: the bridge's user and group can unlock the doors"
		}
		return s + "; NO LOGIN: anyone on this machine can unlock the doors (see the warning)"
	}
	s := strings.Join(urls, ", ")
	if len(urls) > 1 {
		s += " (failover in this order)"
	}
	if m.UsesTLS() {
		switch {
		case m.InsecureSkipVerify:
			s += "; TLS WITHOUT certificate checks"
		case m.CertFile != "":
			s += "; mutual TLS"
		default:
			s += "; TLS"
		}
	}
	if m.Username != "" {
		s += "; user " + m.Username
	}
	return s
}

// configWarnings lists what is valid but deserves the installer's attention.
func configWarnings(cfg *config.Config) []string {
	out := cfg.BrokerWarnings(time.Now())
	keeps := map[string]bool{}
	for _, dc := range cfg.Drivers {
		if spec, err := drivers.Decode(dc.Type, dc.Options); err == nil {
			if k, ok := spec.(drivers.LevelKeeper); ok && k.KeepsLevelOnExit() {
				keeps[dc.ID] = true
			}
		}
	}
	for i, a := range cfg.Alarms {
		if strings.Contains(a.Topic, "+") && a.Expect == 0 && len(a.Sources) == 0 {
			out = append(out, fmt.Sprintf("alarms[%d]: topic %q has a wildcard but neither expect nor sources: a detector that never reports (a flat battery, one removed, its retained value lost) goes unnoticed and its fire with it; set expect to the number of detectors, or list them in sources", i, a.Topic))
		}
	}
	for _, d := range cfg.Doors {
		if d.Egress && d.FailMode == config.FailSafe && !d.HardwiredRelease {
			out = append(out, fmt.Sprintf("door %q is an egress door without hardwired_release: true; wire the fire-alarm relay and a PUSH TO EXIT button in series with its lock power (the bridge is the second line of defence)", d.ID))
		}
		if keeps[d.Relay.Driver] {
			out = append(out, fmt.Sprintf("door %q: driver %q keeps its outputs when doorbridge dies; use a hardware watchdog or a board with a communication-loss timeout", d.ID, d.Relay.Driver))
		}
	}
	return out
}

// powerLost is what a door does when mains power is lost: power_release:
// false holds a fail-safe door locked on battery for a bounded time.
func powerLost(cfg *config.Config, d *config.Door, onHazard string) string {
	if len(cfg.Power) == 0 {
		return "no power source configured"
	}
	if d.FailMode == config.FailSafe && !d.ReleasesOnPowerLoss() {
		return fmt.Sprintf("stays locked on battery up to %v, then unlocks", config.MaxHoldOnBattery)
	}
	return onHazard
}

// sourcesSummary lists what the doors listen to: the alarm sources and
// the power sources.
func sourcesSummary(w io.Writer, cfg *config.Config) {
	for _, a := range cfg.Alarms {
		s := a.Topic
		if a.ValueJSON != "" {
			s += fmt.Sprintf(" (JSON %s: %v = alarm, %v = clear)", a.ValueJSON, a.On, a.Off)
		} else {
			s += fmt.Sprintf(" (%s = clear, %s or anything else = alarm)", a.PayloadOff, a.PayloadOn)
		}
		if n := a.MinSources(); n > 1 {
			s += fmt.Sprintf("; clear only once %d sources reported", n)
		}
		if a.HeartbeatTopic != "" {
			s += fmt.Sprintf("; heartbeat %s within %v", a.HeartbeatTopic, a.HeartbeatTimeout)
		}
		if a.AvailabilityTopic != "" {
			s += "; availability " + a.AvailabilityTopic
		}
		fmt.Fprintf(w, "Alarm: %s\n", s)
	}
	if len(cfg.Power) == 0 {
		fmt.Fprintln(w, "Power: no source (a mains failure is not detected; add power: to release on it)")
	}
	for _, p := range cfg.Power {
		fmt.Fprintf(w, "Power: %s\n", powerSummary(&p))
	}
}

// powerSummary says what a power source reads and when it counts as lost.
func powerSummary(p *config.PowerSource) string {
	var what string
	switch p.Type {
	case config.PowerNUT:
		what = fmt.Sprintf("UPS %q on upsd %s:%d, mains lost on OB or LB", p.UPS, p.Host, p.Port)
	case config.PowerSysfs:
		what = p.Path + "/online"
	case config.PowerMQTT:
		what = fmt.Sprintf("topic %s, %q = mains ok, %q = lost", p.Topic, p.PayloadOK, p.PayloadLost)
	case config.PowerInput:
		what = "line " + p.Line().Name() + ", active = mains ok"
		if p.ActiveLow {
			what += " (active low)"
		}
	}
	return fmt.Sprintf("%s (%s: %s); unread for %v counts as lost", p.Name, p.Type, what, p.Timeout)
}
