package bridge

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/doorbridge/doorbridge/broker"
	"github.com/doorbridge/doorbridge/internal/ratelog"
)

// Incoming MQTT messages reach the loop through two bounded FIFO queues,
// filled by paho's router goroutine (SetOrderMatters(true): one goroutine,
// in the order the broker delivered them, R21):
//
//   - safety: every topic that decides a hazard or restores safety state:
//     alarm values, their availability and heartbeats, MQTT power sources,
//     the bridge's own heartbeat echo, the latch, the reset, the drill date,
//     Home Assistant's status (it may be an alarm source's availability).
//   - other: door commands, lockdown, republish and discovery configs.
//
// Each queue keeps broker order. The loop takes a safety message whenever
// one is waiting, so a flood of junk commands can never delay an alarm or
// the heartbeat echo (issue 12 item 5).
//
// Why letting safety messages overtake commands never weakens safety: a
// safety message is only ever handled earlier than a command that the
// broker delivered before it, never later; so hazards rise (and relays go
// off) no later than in broker order. A command that was overtaken is
// judged against the hazards in force now and, on top, those in force
// around any safety message that overtook it while a hazard was active
// (loop.onQueued): if a hazard held at any point between its delivery and
// now, a command that would power a lock is refused, as it would have been
// in broker order (R17: refused, never queued) or would have been
// overridden by the hazard. A command that takes power off is never
// refused. So reordering can only turn an accepted "power on" into a
// refusal, never the reverse. Within each queue nothing overtakes: two
// commands, or an alarm OFF then ON, are applied in the order sent.
//
// Both queues are bounded; the router never blocks on them. A full "other"
// queue drops the message and counts it (a dropped command is logged,
// rate-limited). A full safety queue cannot drop silently: the bridge
// drops the connection instead, which raises the broker hazard and, on the
// new connection, starts every alarm and power source unknown (alarm and
// lost) until its retained value comes again.
const (
	// Each queue is bounded in messages and in bytes (payload and topic):
	// a burst of small commands queues, a few large messages fill it.
	safetyQueueLen = 8192
	otherQueueLen  = 8192
	queueBytes     = 4 << 20
	// maxInbound bounds a message's payload. Home Assistant discovery
	// configs are the largest the bridge reads (a few kB); alarm and power
	// values are tiny. Larger messages are dropped in the router callback,
	// before any copy or conversion.
	maxInbound = 64 << 10
)

// inbound holds the two queues and the classification of topics.
type inbound struct {
	safety chan evMessage
	other  chan evMessage
	// isSafety tells a safety topic; set by the loop before it subscribes
	// (it reads only the config).
	isSafety func(topic string) bool
	isCmd    func(topic string) bool
	hbTopic  string
	hb       *heartbeatKey
	m        *metrics
	log      *slog.Logger
	overflow func(gen uint64) // a safety message was lost: drop that connection

	seq     atomic.Uint64   // numbers messages in broker order
	used    [2]atomic.Int64 // bytes queued: safety, other
	dropped ratelog.Every   // dropped commands, logged every 10 s (droppedCommand)
}

func newInbound(hbTopic string, hb *heartbeatKey, m *metrics, log *slog.Logger) *inbound {
	return &inbound{
		hbTopic:  hbTopic,
		hb:       hb,
		safety:   make(chan evMessage, safetyQueueLen),
		other:    make(chan evMessage, otherQueueLen),
		isSafety: func(string) bool { return true },
		isCmd:    func(string) bool { return false },
		m:        m,
		log:      log,
		overflow: func(uint64) {},
		dropped:  ratelog.Every{Period: 10 * time.Second},
	}
}

// deliver queues one message of connection gen without blocking: it runs in
// paho's router goroutine.
func (in *inbound) deliver(gen uint64, topic string, payload []byte, retained bool) {
	if len(payload) > maxInbound {
		// Nothing here copies or keeps it.
		in.oversized(gen, topic, retained)
		return
	}
	safety := in.isSafety(topic)
	if topic == in.hbTopic && !in.validEcho(gen, payload, retained) {
		// Junk or forged heartbeats never take a place in the safety queue.
		in.m.mqttDropped.WithLabelValues(dropBadHeartbeat, queueSafety).Inc()
		return
	}
	// paho hands over a payload it never touches again: no copy needed.
	e := evMessage{gen: gen, seq: in.seq.Add(1), safety: safety, topic: topic, payload: payload, retained: retained}
	if safety {
		if !in.push(in.safety, &in.used[0], e) {
			in.m.mqttDropped.WithLabelValues(dropQueueFull, queueSafety).Inc()
			in.overflow(gen)
		}
		return
	}
	if !in.push(in.other, &in.used[1], e) {
		in.m.mqttDropped.WithLabelValues(dropQueueFull, queueOther).Inc()
		if in.isCmd(topic) {
			in.droppedCommand(topic)
		}
	}
}

func msgBytes(e evMessage) int64 { return int64(len(e.payload) + len(e.topic)) }

// push queues e on q unless q is full, in messages or in bytes.
func (in *inbound) push(q chan evMessage, used *atomic.Int64, e evMessage) bool {
	n := msgBytes(e)
	if used.Add(n) > queueBytes {
		used.Add(-n)
		return false
	}
	select {
	case q <- e:
		return true
	default:
		used.Add(-n)
		return false
	}
}

// taken gives back the bytes of a message the loop took from its queue.
func (in *inbound) taken(e evMessage) {
	if e.safety {
		in.used[0].Add(-msgBytes(e))
	} else {
		in.used[1].Add(-msgBytes(e))
	}
}

// oversized counts a message over maxInbound on topic, dropped whole (by
// the packet filter under paho for the largest, mqttclient/bigfilter.go). On a safety
// topic it still counts, as what it is: not a valid value (an alarm source
// that says junk is unknown: alarm, R5), in its place in broker order.
func (in *inbound) oversized(gen uint64, topic string, retained bool) {
	safety := topic != "" && in.isSafety(topic)
	in.m.mqttDropped.WithLabelValues(dropOversized, queueOf(safety)).Inc()
	if safety {
		in.deliver(gen, topic, oversizedPayload, retained)
	}
}

// oversizedPayload stands for an oversized message on a safety topic: no
// alarm, power or reset payload matches it.
var oversizedPayload = []byte("\x00oversized")

// validEcho reports whether payload is a live echo of this process's
// heartbeat on connection gen (a retained one proves nothing).
func (in *inbound) validEcho(gen uint64, payload []byte, retained bool) bool {
	e, ok := in.hb.verify(payload)
	return ok && !retained && e.gen == gen
}

// droppedCommand logs dropped commands, at most once every 10 s, with how
// many were dropped since the last line: a flood must not flood the log.
func (in *inbound) droppedCommand(topic string) {
	if n, due := in.dropped.Note(time.Now()); due {
		in.log.Warn("commands dropped: the bridge is flooded with messages", "dropped", n, "last_topic", truncate([]byte(topic), 80))
	}
}

// Labels of doorbridge_mqtt_messages_dropped_total.
const (
	dropOversized    = "oversized"
	dropQueueFull    = "queue_full"
	dropBadHeartbeat = "bad_heartbeat"
	queueSafety      = "safety"
	queueOther       = "other"
)

func queueOf(safety bool) string {
	if safety {
		return queueSafety
	}
	return queueOther
}

// safetyFilters are the filters of every safety topic (the top of this
// file), the one list of them: the classifier (safetyTopics) is built from
// it, the bridge subscribes to it before anything else (subscriptions), and
// the embedded broker knows its safety publishers by it (SetBridge).
func (l *loop) safetyFilters() []string {
	t := l.b.topics
	f := []string{t.Heartbeat, t.AlarmReset, t.AlarmLatched, t.DrillLast, t.HAStatus}
	for _, a := range l.alarms {
		f = append(f, a.filters()...)
	}
	for _, p := range l.mqttPower {
		f = append(f, p.cfg.Topic)
	}
	return f
}

// safetyTopics returns the classifier of safety topics for the loop's
// config: read-only, so paho's router may call it.
func (l *loop) safetyTopics() func(topic string) bool {
	exact := map[string]bool{}
	var wild []topicPattern
	var multi []string // with a # (an MQTT power topic may hold one)
	for _, f := range l.safetyFilters() {
		switch p := newTopicPattern(f); {
		case strings.Contains(f, "#"):
			multi = append(multi, f)
		case p.wild():
			wild = append(wild, p)
		default:
			exact[f] = true
		}
	}
	return func(topic string) bool {
		if exact[topic] {
			return true
		}
		for _, p := range wild {
			if _, ok := p.match(topic); ok {
				return true
			}
		}
		for _, f := range multi {
			if filterMatches(f, topic) {
				return true
			}
		}
		return false
	}
}

// filterMatches reports whether the MQTT filter f matches topic, which
// holds no wildcard: a filter starting with one never matches a topic
// starting with $ ($SYS...).
func filterMatches(f, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	return broker.TopicsOverlap(f, topic)
}

// commandTopics tells the topics whose dropped messages are commands.
func (l *loop) commandTopics() func(topic string) bool {
	t := l.b.topics
	return func(topic string) bool {
		_, ok := t.DoorFromCommandTopic(topic)
		return ok || topic == t.LockdownSet
	}
}
