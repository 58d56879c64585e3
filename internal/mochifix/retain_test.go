package mochifix

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The hook unlocks only what it locked for the same client: a retained
// message stored without OnPublish (a delayed will) does not release the
// lock another client's publish holds, and nothing is unlocked twice.
func TestRetainHookPairsLocksPerClient(t *testing.T) {
	h := new(RetainHook)
	a, b := &mqtt.Client{ID: "a"}, &mqtt.Client{ID: "b"}
	retained := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}}
	subscribe := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}}
	suback := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}}
	free := func() bool {
		if h.mu.TryLock() {
			h.mu.Unlock()
			return true
		}
		return false
	}

	h.OnPublish(a, retained)
	if free() {
		t.Fatal("a retained publish does not hold the write lock")
	}
	h.OnRetainMessage(b, retained, 1) // b's delayed will: b locked nothing
	if free() {
		t.Fatal("another client's stored message released a's lock")
	}
	h.OnRetainMessage(a, retained, 1)
	if !free() {
		t.Fatal("a's stored message did not release its lock")
	}
	h.OnRetainMessage(a, retained, 1) // again: nothing to release, no panic
	h.OnPublish(a, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}})
	if !free() {
		t.Fatal("a publish that is not retained took the lock")
	}

	h.OnPacketSent(a, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}}, nil)
	if !free() {
		t.Fatal("a packet other than SUBACK sent took the read lock")
	}
	h.OnPacketSent(a, suback, nil)
	if h.mu.TryLock() {
		t.Fatal("a subscription being processed does not hold the read lock")
	}
	h.OnPacketProcessed(b, subscribe, nil) // b has no subscription in processing
	if h.mu.TryLock() {
		t.Fatal("another client's packet released a's read lock")
	}
	h.OnPacketProcessed(a, subscribe, nil)
	if !free() {
		t.Fatal("the processed subscription did not release its read lock")
	}
	h.OnPacketProcessed(a, subscribe, nil) // a SUBSCRIBE whose SUBACK failed: nothing to release
	if !free() {
		t.Fatal("the lock state changed without a SUBACK")
	}

	h.OnWill(a, mqtt.Will{Retain: true, WillDelayInterval: 10})
	if !free() {
		t.Fatal("a delayed will took the lock (mochi stores it later, without OnWill)")
	}
	h.OnWill(a, mqtt.Will{Retain: true})
	if free() {
		t.Fatal("a retained will sent at once does not hold the write lock")
	}
	h.OnRetainMessage(a, retained, 1)
	if !free() {
		t.Fatal("the stored will did not release its lock")
	}
}
