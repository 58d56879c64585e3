package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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
	for _, topic := range l.announced.gone {
		rm := discovery.Remove(topic)
		l.mq.publish(rm.Topic, string(rm.Payload), true)
	}
	l.republishState()
}

// discovery returns this config's discovery messages (built once: they
// depend only on the config).
func (l *loop) discovery() []discovery.Message {
	if l.discoveryMsgs == nil {
		l.discoveryMsgs = discovery.Build(l.b.cfg, discovery.Info{Version: l.b.version, SupportURL: SupportURL})
		l.removeAnnounced()
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

// announcement is what earlier starts announced to Home Assistant, kept
// in bridge.state_dir (the discovery record, state.go): the broker's
// retained payloads say the same where there are any, but the embedded
// broker forgets them on a restart, and HA keeps the entities they made.
// Removals come from both: the record here, the retained payloads in
// onDiscoveryConfig.
type announcement struct {
	prev  map[string]map[string]string // device topic -> component id -> platform, as loaded
	saved []byte                       // the record as last queued for saving
	gone  []string                     // device topics prev has and this config does not
}

// loadAnnounced reads the discovery record. One that cannot be read means
// only the retained payloads say what to remove: stale entities may stay.
func (l *loop) loadAnnounced() {
	v, err := l.b.state.Load(announcedRecord, []byte("{}"), []byte("{}"))
	var prev map[string]map[string]string
	if jerr := json.Unmarshal(v, &prev); jerr != nil {
		err, prev = errors.Join(err, fmt.Errorf("statefile: %s: %w", announcedRecord, jerr)), nil
	}
	if err != nil {
		l.stateDamaged(announcedRecord, "Home Assistant entities announced before unknown: only the broker's retained discovery payloads say which to remove", err)
	}
	l.announced = announcement{prev: prev, saved: v}
}

// removeAnnounced adds a removal stub to each device payload for every
// component the record has and the payload lacks, lists the devices the
// record has and the config lacks (cleared on every publish of this run:
// HA may be away at the first), and queues the record of this config.
// The stubs and clears stay for this run only: the next start's record no
// longer lists what they removed.
func (l *loop) removeAnnounced() {
	now := make(map[string]map[string]string, len(l.discoveryMsgs))
	for i, m := range l.discoveryMsgs {
		now[m.Topic] = discovery.Platforms(m)
		if rm, changed := discovery.WithRemovedPlatforms(m, l.announced.prev[m.Topic]); changed {
			l.log.Info("removing Home Assistant entities no longer configured", "topic", m.Topic, "from", announcedRecord+" record")
			l.discoveryMsgs[i] = rm
		}
	}
	for _, topic := range slices.Sorted(maps.Keys(l.announced.prev)) {
		if _, kept := now[topic]; !kept {
			l.log.Info("removing Home Assistant device no longer configured", "topic", topic, "from", announcedRecord+" record")
			l.announced.gone = append(l.announced.gone, topic)
		}
	}
	l.announced.prev = nil
	if v, err := json.Marshal(now); err == nil && !bytes.Equal(v, l.announced.saved) {
		l.announced.saved = v
		l.saveLater(announcedRecord, v)
	}
}
