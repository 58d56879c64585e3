package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainLimitHook bounds what each user may leave in the embedded broker's
// retained store, which lives in the bridge's own process for as long as
// it runs: at most maxRetainedPerUser messages of maxRetainedBytesPerUser
// bytes in all. A retained message beyond that is still delivered to the
// subscribers present, but not kept. Clearing a retained message (an
// empty payload) is always allowed. The bridge's own user is exempt: what
// it retains is its doors' state and discovery, bounded by the config.
type retainLimitHook struct {
	mochi.HookBase
	log    *slog.Logger
	exempt func(cl *mochi.Client) bool

	// bridgeDrops counts messages mochi dropped for the bridge's own
	// client because its queue (maxWritesPending) was full: none, with
	// bridgeFlow; dropped is told about each.
	bridgeDrops atomic.Int64
	dropped     func(cl *mochi.Client, topic string)
	// liveOnly tells the topics whose messages are delivered live and
	// never stored retained: commands, lockdown, republish (R18: the
	// bridge ignores retained ones). A stored junk command was sent to the
	// bridge again on each of its SUBSCRIBEs, ahead of its safety values.
	liveOnly func(topic string) bool

	mu     sync.Mutex
	owner  map[string]retained // topic → who retained it, and its size
	counts map[string]int      // per user
	bytes  map[string]int
}

type retained struct {
	user string
	size int
}

// Per-user retained-store bounds: Home Assistant and an integration or two
// retain discovery configs (a few kB each) and states.
const (
	maxRetainedPerUser      = 1000
	maxRetainedBytesPerUser = 4 << 20
)

func newRetainLimitHook(log *slog.Logger, exempt func(cl *mochi.Client) bool) *retainLimitHook {
	return &retainLimitHook{log: log, exempt: exempt,
		owner: map[string]retained{}, counts: map[string]int{}, bytes: map[string]int{}}
}

// ID names the hook.
func (h *retainLimitHook) ID() string { return "doorbridge-retain-limit" }

// Provides reports the two ways a message gets retained, and drops.
func (h *retainLimitHook) Provides(b byte) bool {
	return b == mochi.OnPublish || b == mochi.OnWill || b == mochi.OnPublishDropped
}

// OnPublishDropped reports messages dropped for the bridge's own client
// (its queue was full: a burst of more than maxWritesPending messages, a
// subscription's retained ones included), at the 1st, 2nd, 4th, 8th...
// drop so that a flood does not flood the log too.
func (h *retainLimitHook) OnPublishDropped(cl *mochi.Client, pk packets.Packet) {
	if h.exempt == nil || !h.exempt(cl) {
		return
	}
	if n := h.bridgeDrops.Add(1); n&(n-1) == 0 {
		h.log.Warn("embedded broker dropped a message for the bridge: its queue was full", "topic", pk.TopicName, "dropped", n, "queue", maxWritesPending)
	}
	if h.dropped != nil {
		h.dropped(cl, pk.TopicName)
	}
}

// OnPublish keeps a retained message out of the store when its user is
// over budget.
func (h *retainLimitHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && (h.isLiveOnly(pk.TopicName, len(pk.Payload)) || !h.admit(cl, pk.TopicName, len(pk.Payload))) {
		pk.FixedHeader.Retain = false
	}
	return pk, nil
}

// OnWill does the same for a retained will.
func (h *retainLimitHook) OnWill(cl *mochi.Client, w mochi.Will) (mochi.Will, error) {
	if w.Retain && (h.isLiveOnly(w.TopicName, len(w.Payload)) || !h.admit(cl, w.TopicName, len(w.Payload))) {
		w.Retain = false
	}
	return w, nil
}

// isLiveOnly: a message on a live-only topic is not stored; clearing one
// (an empty payload) still is allowed.
func (h *retainLimitHook) isLiveOnly(topic string, size int) bool {
	return size > 0 && h.liveOnly != nil && h.liveOnly(topic)
}

// admit accounts for cl retaining size bytes on topic, replacing what was
// retained there, and reports whether its user stays within bounds.
func (h *retainLimitHook) admit(cl *mochi.Client, topic string, size int) bool {
	user := string(cl.Properties.Username)
	exempt := h.exempt != nil && h.exempt(cl)
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.owner[topic]
	if size == 0 || exempt {
		if had {
			h.counts[old.user]--
			h.bytes[old.user] -= old.size
			delete(h.owner, topic)
		}
		return true
	}
	count, total := h.counts[user]+1, h.bytes[user]+size
	if had && old.user == user {
		count, total = count-1, total-old.size
	}
	if count > maxRetainedPerUser || total > maxRetainedBytesPerUser {
		h.log.Debug("embedded broker did not retain a message: its user's retained store is full", "username", user, "topic", topic)
		return false
	}
	if had {
		h.counts[old.user]--
		h.bytes[old.user] -= old.size
	}
	h.owner[topic] = retained{user: user, size: size}
	h.counts[user]++
	h.bytes[user] += size
	return true
}
