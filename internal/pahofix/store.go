// Package pahofix works around a data race in paho.mqtt.golang v1.5.1.
//
// After a reconnection, paho's resume sets the DUP flag on the PUBLISH
// packets in its store while a Publish made just after the reconnection may
// still be writing that same packet to the network. Storing a copy of each
// PUBLISH (taken in Publish, before the packet is sent) keeps the two apart.
package pahofix

import (
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Store returns a memory store that keeps copies of PUBLISH packets.
func Store() paho.Store { return copyingStore{paho.NewMemoryStore()} }

type copyingStore struct{ paho.Store }

// Put stores a copy of a PUBLISH packet, and any other packet as it is.
func (s copyingStore) Put(key string, m packets.ControlPacket) {
	if p, ok := m.(*packets.PublishPacket); ok {
		cp := *p
		m = &cp
	}
	s.Store.Put(key, m)
}
