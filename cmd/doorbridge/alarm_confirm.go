package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/bridge"
)

// bridgeView is what the bridge says about its alarm. The broker passing a
// message back proves only that it took it (another client publishing the
// same payload would pass too); the bridge's own state changing proves it
// obeyed. Retained copies, delivered on subscribing, are the state before
// the command; live ones (retain flag clear) are the bridge's answer.
type bridgeView struct {
	t      bridge.Topics
	mu     sync.Mutex
	before map[string]string
	live   chan paho.Message
}

// watchBridge subscribes to the bridge's availability, alarm state, latch
// and errors before the command is published, so no answer is missed.
func watchBridge(c paho.Client, t bridge.Topics, timeout time.Duration) (*bridgeView, error) {
	v := &bridgeView{t: t, before: map[string]string{}, live: make(chan paho.Message, 64)}
	topics := map[string]byte{t.Availability: 1, t.AlarmState: 1, t.AlarmLatched: 1, t.Error: 1}
	st := c.SubscribeMultiple(topics, func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			v.mu.Lock()
			v.before[m.Topic()] = string(m.Payload())
			v.mu.Unlock()
			return
		}
		select {
		case v.live <- m:
		default: // a flood of errors: the answer is among the first
		}
	})
	if !st.WaitTimeout(timeout) {
		return nil, errors.New("subscribe (to read the bridge's answer): no acknowledgement")
	}
	if err := st.Error(); err != nil {
		return nil, fmt.Errorf("subscribe (to read the bridge's answer): %w", err)
	}
	for topic, q := range st.(*paho.SubscribeToken).Result() {
		if q == 0x80 {
			return nil, fmt.Errorf("%w: the broker refused to let this user read %s, so whether the bridge obeyed cannot be checked", errNotConfirmed, topic)
		}
	}
	return v, nil
}

// was is the retained value of topic from before the command ("" if none).
func (v *bridgeView) was(topic string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.before[topic]
}

// confirms waits for the bridge to act on the command (published by then)
// and says what it did; an error when it refused or did not answer.
func (v *bridgeView) confirms(action, topic, payload string, timeout time.Duration) (string, error) {
	if action == "reset" {
		return v.confirmsReset(topic, timeout)
	}
	if avail := v.was(v.t.Availability); avail != "online" {
		return fmt.Sprintf("the broker passed it back; the bridge is not connected (%s: %s), so it did not confirm", v.t.Availability, orNone(avail)), nil
	}
	latched := v.was(v.t.AlarmLatched)
	state := v.was(v.t.AlarmState)
	deadline := time.After(timeout)
	for state != payloadState(action) {
		select {
		case m := <-v.live:
			switch m.Topic() {
			case v.t.AlarmState:
				state = string(m.Payload())
			case v.t.AlarmLatched:
				latched = string(m.Payload())
			}
		case <-deadline:
			return "", fmt.Errorf("published %q to %s, but the bridge did NOT confirm within %v: its %s still reads %s (does the bridge read %s? is another alarm source active?)", payload, topic, timeout, v.t.AlarmState, orNone(state), topic)
		}
	}
	said := fmt.Sprintf("the bridge confirmed: %s reads %s", v.t.AlarmState, state)
	if action == "off" && latched == "ON" {
		said += "; the doors are still latched: run doorbridge alarm reset"
	}
	return said, nil
}

func payloadState(action string) string {
	if action == "on" {
		return "ON"
	}
	return "OFF"
}

// confirmsReset waits for the latch to read OFF, or for the bridge's
// refusal of this reset on its error topic.
func (v *bridgeView) confirmsReset(topic string, timeout time.Duration) (string, error) {
	if v.was(v.t.Availability) == "online" && v.was(v.t.AlarmLatched) == "OFF" && v.was(v.t.AlarmState) != "ON" {
		return "the bridge had nothing latched (" + v.t.AlarmLatched + " reads OFF)", nil
	}
	deadline := time.After(timeout)
	for {
		select {
		case m := <-v.live:
			if m.Topic() == v.t.AlarmLatched && string(m.Payload()) == "OFF" {
				return "the bridge released the latch: " + v.t.AlarmLatched + " reads OFF", nil
			}
			if why := resetRefusal(m, v.t.Error, topic); why != "" {
				return "", fmt.Errorf("the bridge REFUSED the reset: %s", why)
			}
		case <-deadline:
			return "", fmt.Errorf("published %q to %s, but the bridge did NOT confirm within %v (%s: %s; %s: %s)", "RESET", topic, timeout,
				v.t.Availability, orNone(v.was(v.t.Availability)), v.t.AlarmLatched, orNone(v.was(v.t.AlarmLatched)))
		}
	}
}

// resetRefusal is the bridge's reason when m refuses a reset on topic.
func resetRefusal(m paho.Message, errTopic, topic string) string {
	if m.Topic() != errTopic {
		return ""
	}
	var e struct{ Error, Topic string }
	if json.Unmarshal(m.Payload(), &e) != nil || e.Topic != topic || !strings.HasPrefix(e.Error, "reset refused") {
		return ""
	}
	return e.Error
}

func orNone(s string) string {
	if s == "" {
		return "nothing retained"
	}
	return s
}
