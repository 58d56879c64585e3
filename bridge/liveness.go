package bridge

// The second line of watchdogs (R9): systemd's WatchdogSec= and an optional
// hardware watchdog device. The in-process watchdog (watchdog.go) stays the
// first line: it turns every relay off within loop_timeout. These two
// restart the process or reset the machine when the loop stays stuck.
//
// Both are fed only by the control loop itself, at the end of a timer tick,
// and only when that tick came on time (within loop_timeout of the one
// before) and the in-process watchdog has not tripped. No other goroutine
// pings them, so no helper that still runs can hide a loop that does not.

import (
	"fmt"
	"strings"
	"time"

	"github.com/doorbridge/doorbridge/internal/hwwatchdog"
	"github.com/doorbridge/doorbridge/internal/sdnotify"
)

// defaultReadyTimeout bounds start-up for systemd: READY=1 is sent when the broker
// link is first proven, or this long after the loop started, whichever
// comes first. Until the link is proven every relay is held off (the startup
// hazard), which is the safe state; failing the start and restarting would
// not reach the broker sooner, and would hold up units ordered after ours.
const defaultReadyTimeout = 10 * time.Second

// hwPingTicks: the hardware watchdog is pinged on a healthy tick at least
// this many tick intervals after the last ping (every 500 ms with the
// default 100 ms tick; an idle loop ticks at least every loop_timeout/2, so
// at most about a second apart by default). Watchdog devices time out after
// several seconds; a ping on every tick would only add syscalls.
const hwPingTicks = 5

// liveness is the loop's side of the second-line watchdogs. Only the loop
// goroutine touches it.
type liveness struct {
	notify   *sdnotify.Notifier
	sdEvery  time.Duration // half of WatchdogSec; 0: no systemd watchdog
	hw       *hwwatchdog.Device
	hwEvery  time.Duration
	started  time.Time
	lastTick time.Time // when the previous tick completed (monotonic clock)
	lastSD   time.Time
	lastHW   time.Time
	ready    bool
	status   string
	sdErr    bool // the last notification failed (logged once)
	hwErr    bool // the last ping failed (logged once)
}

// startLiveness opens the hardware watchdog (which arms it) and prepares
// the systemd notifications. Called by Run before the loop runs.
func (l *loop) startLiveness() error {
	lv := &l.live
	lv.notify = l.b.notify
	lv.sdEvery = lv.notify.WatchdogInterval() / 2
	lv.hwEvery = hwPingTicks * l.b.tick
	lv.started = time.Now()
	if dev := l.b.cfg.Watchdog.Device; dev != "" {
		d, err := hwwatchdog.Open(dev)
		if err != nil {
			return fmt.Errorf("watchdog.device: %w", err)
		}
		lv.hw = d
		l.log.Info("hardware watchdog armed", "device", dev, "ping_every", lv.hwEvery)
	}
	if lv.notify != nil {
		l.log.Info("systemd notify", "watchdog", lv.notify.WatchdogInterval())
	}
	return nil
}

// feedWatchdogs runs at the end of every timer tick of the loop.
func (l *loop) feedWatchdogs() {
	lv := &l.live
	now := time.Now()
	onTime := lv.lastTick.IsZero() || now.Sub(lv.lastTick) <= l.b.cfg.Watchdog.LoopTimeout
	lv.lastTick = now
	healthy := onTime && !l.b.wd.tripped.Load() && !l.shutting

	if lv.notify != nil {
		var states []string
		if !lv.ready && (l.everLinked || now.Sub(lv.started) >= l.b.readyBy) {
			lv.ready = true
			states = append(states, sdnotify.Ready)
			if !l.everLinked {
				l.log.Warn("telling systemd we are ready without a proven broker link; every lock stays unpowered until there is one", "after", l.b.readyBy)
			}
		}
		if s := l.statusLine(); s != lv.status {
			lv.status = s
			states = append(states, sdnotify.Status(s))
		}
		if healthy && lv.sdEvery > 0 && now.Sub(lv.lastSD) >= lv.sdEvery {
			lv.lastSD = now
			states = append(states, sdnotify.Watchdog)
		}
		if len(states) > 0 {
			l.sdNotify(states...)
		}
	}
	if lv.hw != nil && healthy && now.Sub(lv.lastHW) >= lv.hwEvery {
		lv.lastHW = now
		err := lv.hw.Ping()
		if err != nil && !lv.hwErr {
			l.log.Error("hardware watchdog ping failed", "err", err)
		} else if err == nil && lv.hwErr {
			l.log.Info("hardware watchdog ping works again")
		}
		lv.hwErr = err != nil
	}
}

func (l *loop) sdNotify(states ...string) {
	err := l.live.notify.Notify(states...)
	if err != nil && !l.live.sdErr {
		l.log.Error("systemd notification failed", "err", err)
	} else if err == nil && l.live.sdErr {
		l.log.Info("systemd notifications work again")
	}
	l.live.sdErr = err != nil
}

// statusLine is the one-line state systemctl status shows.
func (l *loop) statusLine() string {
	switch {
	case !l.everLinked:
		return "waiting for a proven MQTT link; every lock unpowered"
	case l.effective.Any():
		return fmt.Sprintf("%d doors; hazards: %s", len(l.b.doors), strings.Join(l.effective.Names(), ", "))
	}
	return fmt.Sprintf("%d doors; no hazards", len(l.b.doors))
}

// notifyStopping tells systemd the bridge is shutting down.
func (l *loop) notifyStopping() {
	if l.live.notify != nil {
		l.sdNotify(sdnotify.Stopping, sdnotify.Status("stopping: every relay off"))
	}
}

// stopLiveness closes the hardware watchdog. Only a clean shutdown with
// every relay written off disarms it with the magic 'V'; otherwise it stays
// armed, and the machine resets unless the bridge is back in time.
func (l *loop) stopLiveness(clean bool) {
	hw := l.live.hw
	if hw == nil {
		return
	}
	l.live.hw = nil
	if clean {
		for _, d := range l.b.doors {
			if d.power || d.fault || !d.written {
				clean = false
				l.log.Error("hardware watchdog left armed: a relay is not known to be off", "door", d.cfg.ID)
				break
			}
		}
	}
	if !clean {
		if err := hw.Close(); err != nil {
			l.log.Error("closing hardware watchdog", "err", err)
		}
		return
	}
	if err := hw.MagicClose(); err != nil {
		l.log.Error("hardware watchdog: magic close failed; it stays armed", "err", err)
		return
	}
	l.log.Info("hardware watchdog disarmed (clean shutdown, every relay off)", "device", hw.Path())
}
