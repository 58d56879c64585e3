package bridge

// When the loop's next timer tick is due. A bridge with nothing going on
// sleeps until its next deadline instead of waking every tick: an idle
// bridge is most of a bridge's life, and 10 wake-ups a second were most of
// its CPU (issue 7: idle CPU ≤ 0.1 % of a core).
//
// Two regimes:
//   - busy: something is timing out in steps no coarser than the tick
//     (a hazard held for relock_delay, a momentary OPEN, a jammed relay
//     retried, door inputs polled, a link not yet proven, publishes to
//     retry): tick every Options.TickInterval, as always.
//   - idle: wake at the earliest deadline that can change a relay or a
//     published state: the next heartbeat to send, the instant the last
//     heartbeat echo goes stale (heartbeat_timeout), an alarm source's
//     heartbeat_timeout, an MQTT power source's timeout, the next systemd
//     or hardware watchdog ping; and at the latest
//     loop_timeout/2 after the previous tick, so the loop still checks in
//     with the in-process watchdog well within loop_timeout.
//
// A deadline is hit at most one tick late either way, so detection times
// are what they were with a fixed tick.

import "time"

// idleTickMax is the longest the loop sleeps between ticks: half of
// loop_timeout (1 s by default), leaving the watchdog half of it as slack
// for a loop that is merely late. It was a quarter: with the default
// heartbeat_interval of 1 s that was a wake-up between every two
// heartbeats for the check-in alone, a third of an idle bridge's loop
// wake-ups. A stuck loop is detected as soon as before: loop_timeout after
// its last check-in.
func idleTickMax(loopTimeout time.Duration) time.Duration { return loopTimeout / 2 }

// past is added to a "stale after d" deadline: the checks compare with >,
// so the tick must come just after the deadline, not on it.
const past = time.Millisecond

// busy reports whether some timer runs that needs every tick.
func (l *loop) busy() bool {
	if l.raw.Any() || l.effective.Any() || l.wdHazard || l.b.wd.tripped.Load() || l.shutting ||
		!l.linkHealthy || l.republishPending || (l.mq != nil && l.mq.dropped.Load()) {
		return true
	}
	now := l.now()
	for _, d := range l.b.doors {
		if d.io != nil || d.fault || !d.momentaryUntil.IsZero() || d.recovering(now, l.b.cfg.Watchdog.RelockDelay) {
			return true
		}
	}
	return false
}

// nextTick returns when the next timer tick is due, given the time of the
// previous one. Only the loop goroutine calls it.
func (l *loop) nextTick(lastTick time.Time) time.Time {
	wd := l.b.cfg.Watchdog
	checkin := idleTickMax(wd.LoopTimeout)
	if l.busy() {
		// Never slower than a check-in every loop_timeout/2: with a
		// loop_timeout near its 100 ms minimum, the tick is shorter.
		return lastTick.Add(min(l.b.tick, checkin))
	}
	next := lastTick.Add(checkin)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	earlier(l.hbSentAt.Add(wd.HeartbeatInterval))
	earlier(l.hbRecvAt.Add(wd.HeartbeatTimeout + past))
	for i := range l.alarms {
		a := &l.alarms[i]
		if a.cfg.HeartbeatTopic != "" && !a.beatAt.IsZero() {
			earlier(a.beatAt.Add(a.cfg.HeartbeatTimeout + past))
		}
	}
	for i := range l.mqttPower {
		if p := &l.mqttPower[i]; p.known {
			earlier(p.at.Add(p.cfg.Timeout + past))
		}
	}
	for _, d := range l.b.doors {
		// A relay that recovered holds its door for relock_delay: busy()
		// may have seen that end before the last evaluation did.
		if !d.faultCleared.IsZero() {
			if end := d.faultCleared.Add(wd.RelockDelay + past); end.After(lastTick) {
				earlier(end)
			}
		}
	}
	// The second-line watchdogs are fed from ticks (liveness.go): tick when
	// the next ping is due. Their times are on the real clock.
	now := l.now()
	if lv := &l.live; lv.notify != nil && lv.sdEvery > 0 {
		earlier(now.Add(time.Until(lv.lastSD.Add(lv.sdEvery + past))))
	}
	if lv := &l.live; lv.hw != nil {
		earlier(now.Add(time.Until(lv.lastHW.Add(lv.hwEvery + past))))
	}
	return next
}
