package bridge

import (
	"math/rand/v2"
	"time"

	"github.com/doorbridge/doorbridge/discovery"
)

// SupportURL is where Home Assistant's origin info points users.
const SupportURL = "https://github.com/doorbridge/doorbridge"

// discoveryWild subscribes to every device-discovery topic, so the bridge can
// find its own stale door devices (doors removed from the config).
func (t Topics) discoveryWild(prefix string) string { return prefix + "/device/+/config" }

// publishDiscovery publishes every discovery payload, retained, then the
// whole state (Home Assistant wants the config before the states).
func (l *loop) publishDiscovery() {
	if !l.synced() {
		return
	}
	for _, m := range l.discovery() {
		l.mq.publish(m.Topic, string(m.Payload), true)
	}
	l.republishState()
}

// discovery returns this config's discovery messages (built once: they
// depend only on the config).
func (l *loop) discovery() []discovery.Message {
	if l.discoveryMsgs == nil {
		l.discoveryMsgs = discovery.Build(l.b.cfg, discovery.Info{Version: l.b.version, SupportURL: SupportURL})
	}
	return l.discoveryMsgs
}

// onDiscoveryConfig removes from Home Assistant what this bridge announced
// before and the current config no longer produces: a whole device (a door
// removed from the config), or some of a device's entities (an input
// removed from a door).
func (l *loop) onDiscoveryConfig(e evMessage) {
	if !e.retained || len(e.payload) == 0 || !discovery.IsOwnDevice(l.b.cfg, e.topic, e.payload) {
		return
	}
	msgs := l.discovery()
	for i, m := range msgs {
		if m.Topic == e.topic {
			l.removeComponents(i, e.payload)
			return
		}
	}
	l.log.Info("removing stale Home Assistant device", "topic", e.topic)
	rm := discovery.Remove(e.topic)
	l.mq.publish(rm.Topic, string(rm.Payload), true)
}

// scheduleRepublish republishes discovery and state after a small random
// delay, as Home Assistant asks after its birth message (so a restart of HA
// is not met by every device at the same instant). Requests while one is
// pending join it, and are logged with it: a flood of them is one line a
// republish, not one a message.
func (l *loop) scheduleRepublish(topic string) {
	l.republishRequests++
	l.republishTopic = topic
	if l.republishPending {
		return
	}
	l.republishPending = true
	delay := 200*time.Millisecond + rand.N(800*time.Millisecond)
	events, done := l.b.events, l.mq.done
	time.AfterFunc(delay, func() {
		select {
		case events <- evFunc(func(l *loop) {
			l.republishPending = false
			l.log.Info("republishing discovery and state", "topic", l.republishTopic, "requests", l.republishRequests)
			l.republishRequests = 0
			l.publishDiscovery()
		}):
		case <-done:
		}
	})
}

// removeComponents republishes discovery message i with a removal stub for
// each component that previous, its retained payload, has and it lacks. The
// stubs stay in this run's payload, for a republish on HA's birth message;
// the next start reads them back and leaves them out.
func (l *loop) removeComponents(i int, previous []byte) {
	m, changed := discovery.WithRemoved(l.discoveryMsgs[i], previous)
	if !changed {
		return
	}
	l.discoveryMsgs[i] = m
	l.log.Info("removing Home Assistant entities no longer configured", "topic", m.Topic)
	l.mq.publish(m.Topic, string(m.Payload), true)
}
