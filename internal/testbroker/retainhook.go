package testbroker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainHook works around a data race in mochi v2.7.9: storing a retained
// message (TopicsIndex.RetainMessage writes a particle's retainPath under the
// particle's lock) races with the scan for retained messages that a new
// wildcard subscription makes (scanMessages reads retainPath without it). The
// race detector reports it whenever a client subscribes while another
// publishes retained, which end-to-end tests do all the time. The hook holds
// a read lock from the start of a SUBSCRIBE to the end of its processing
// (retained messages included), and the write lock from the start of a
// retained PUBLISH to the moment its retained message is stored. Wills take
// (OnWill) take the same lock. The embedded broker in production is not changed: the race
// reads a string that is being replaced, which does not affect doorbridge's
// own client there.
type retainHook struct {
	mqtt.HookBase
	mu sync.RWMutex
}

// ID names the hook.
func (h *retainHook) ID() string { return "testbroker-retain-scan" }

// Provides reports the events the hook brackets.
func (h *retainHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSubscribe, mqtt.OnPacketProcessed, mqtt.OnPublish, mqtt.OnWill, mqtt.OnRetainMessage:
		return true
	}
	return false
}

// OnSubscribe takes the read lock for the subscription's processing.
func (h *retainHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	h.mu.RLock()
	return pk
}

// OnPacketProcessed releases the read lock once a SUBSCRIBE, and the
// retained messages it sent, are done.
func (h *retainHook) OnPacketProcessed(_ *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type == packets.Subscribe {
		h.mu.RUnlock()
	}
}

// OnPublish takes the write lock for a retained message until it is stored.
func (h *retainHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain {
		h.mu.Lock()
	}
	return pk, nil
}

// OnWill takes the write lock for a retained will sent at once: mochi then
// stores it (retainMessage) without calling OnPublish.
func (h *retainHook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.Retain && will.WillDelayInterval == 0 {
		h.mu.Lock()
	}
	return will, nil
}

// OnRetainMessage releases the write lock: the retained message is stored.
func (h *retainHook) OnRetainMessage(*mqtt.Client, packets.Packet, int64) {
	h.mu.Unlock()
}
