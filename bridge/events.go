package bridge

// Events reach the loop on one channel. MQTT callbacks and other goroutines
// only build an event and hand it off; the loop does the work.
type event any

// evConnected: the MQTT connection generation gen is up.
type evConnected struct{ gen uint64 }

// evDisconnected: connection generation gen was lost.
type evDisconnected struct {
	gen uint64
	err error
}

// evSubscribed: the subscriptions of generation gen were acknowledged (or failed).
type evSubscribed struct {
	gen uint64
	err error
}

// evMessage is an MQTT message on a subscribed topic, received on
// connection gen (zero in tests that hand messages to the loop directly).
type evMessage struct {
	gen      uint64
	seq      uint64 // broker order across both inbound queues (inbound.go)
	safety   bool   // came through the safety queue
	topic    string
	payload  []byte
	retained bool
}

// evPower is a power source's new reading.
type evPower struct {
	source string
	lost   bool
	detail string
}

// evCodeChecked is the result of checking a door code off the loop.
type evCodeChecked struct {
	door  *door
	cmd   DoorCommand
	topic string
	ok    bool
	at    codeCheckStart // what the loop saw when the check started
}

// evFunc runs a function on the loop, in turn with every other event: the
// console's actions and snapshots, the delayed discovery republish, tests.
type evFunc func(*loop)
