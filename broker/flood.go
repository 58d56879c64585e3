package broker

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/doorbridge/doorbridge/internal/mochifix"
	"github.com/doorbridge/doorbridge/internal/ratelog"
)

// The bridge's queue in its embedded broker (issue 12 item 5). mochi
// queues at most maxWritesPending messages for each client and drops what
// does not fit: a junk flood on any topic the bridge reads (commands for
// made-up doors, from any user allowed to command) pushed out alarms and
// heartbeat echoes. mochifix.Flow holds each message for the bridge back,
// in its publisher's goroutine, until the bridge's queue has room, so a
// flooder is slowed to the bridge's pace and nothing for the bridge is
// dropped by mochi:
//
//   - safety messages (the topics bridge/inbound.go puts in the safety queue:
//     alarm values, their availability and heartbeats, power, the bridge's
//     heartbeat echo, the latch, the reset...) go ahead of every other one
//     and may fill the queue;
//   - the others (commands, lockdown, republish, discovery configs) are let
//     in only while the queue is under half full: a command flood can
//     never take the room kept for an alarm. One that cannot get in within
//     bulkWait is shed (doorbridge_embedded_broker_shed_total{queue="other"}):
//     a lost junk command is harmless, and a real one is no worse off than
//     in the bridge's own full "other" queue (bridge/inbound.go);
//   - a safety message that cannot get in within safetyWait means the bridge
//     has stopped reading: its heartbeat echo is stuck in the same queue,
//     so the link is already down in all but name. The broker ends the
//     bridge's connection then, never drops the message silently: the
//     broker hazard holds the locks safe, and the new connection reads
//     every retained safety value again;
//   - that holds in the bridge's own read goroutine too (Flow.OwnWait):
//     mochi sends a subscription's retained messages there, and a site
//     with more retained safety values than maxWritesPending (300 Zigbee
//     detectors and their availability) had those that did not fit at
//     once cut the bridge's connection, on every SUBSCRIBE again: it never
//     got its alarm state (review of issue 12, M2). The bridge reads as
//     fast as the broker writes, so such a wait is short; one of
//     safetyWait means the bridge stopped reading, as above.
//
// Why not end the bridge's connection on a drop, or rate-limit publishers
// (both tried): the first turned every junk flood into a broker hazard
// (an attacker released the maglocks by flooding); a rate limit either let
// the queue overflow or throttled Home Assistant, depending on the machine.
const (
	bulkLimit   = maxWritesPending / 2
	safetyLimit = maxWritesPending
	bulkWait    = 100 * time.Millisecond
	// safetyWait is longer than the default watchdog.heartbeat_timeout
	// (3 s): by then a bridge that reads nothing has lost its link anyway.
	safetyWait = 5 * time.Second
)

// errBridgeStuck ends the bridge's connection when a safety message for it
// could not be queued.
var errBridgeStuck = errors.New("the bridge did not read its safety messages in time")

// bridgeFlow is the embedded broker's side of the bridge's queue: which
// topics are safety, and the metrics, both set once the bridge's loop
// exists (SetBridge).
type bridgeFlow struct {
	flow     *mochifix.Flow
	log      *slog.Logger
	acl      mochi.Hook
	isSafety atomic.Pointer[func(topic string) bool]
	m        atomic.Pointer[Metrics]
	// safetyPub tells a publisher that may publish a safety topic (its
	// commands are never held: safetyPublisher); nil until SetBridge.
	safetyPub atomic.Pointer[func(cl *mochi.Client) bool]

	shed ratelog.Every // shed commands, logged every 10 s (logShed)
}

// newBridgeFlow watches the clients bridge tells, asking acl for
// permissions.
func newBridgeFlow(bridge func(*mochi.Client) bool, acl mochi.Hook, log *slog.Logger) *bridgeFlow {
	bf := &bridgeFlow{log: log, acl: acl, shed: ratelog.Every{Period: 10 * time.Second}}
	if bridge == nil {
		bridge = func(*mochi.Client) bool { return false }
	}
	bf.flow = &mochifix.Flow{
		Watch:   bridge,
		ACL:     acl.OnACLCheck,
		Class:   bf.class,
		Limit:   [2]int{mochifix.Priority: safetyLimit, mochifix.Bulk: bulkLimit},
		Wait:    [2]time.Duration{mochifix.Priority: safetyWait, mochifix.Bulk: bulkWait},
		OwnWait: safetyWait,
		Delayed: bf.delayed,
		Timeout: bf.timeout,
		NoWait:  bf.noWait,
	}
	return bf
}

// noWait: a publisher that may publish a safety topic (Home Assistant: the
// alarm, on the connection that carries its commands) has its commands go
// ahead of every other publisher's, or its alarm waited in its socket
// behind them, a bulkWait each (review 12 major 3). It is still held in
// turn: one that floods is slowed like any other.
func (bf *bridgeFlow) noWait(cl *mochi.Client) bool {
	f := bf.safetyPub.Load()
	return f != nil && (*f)(cl)
}

// safetyPublisher tells, for acl, the publishers that may publish to one
// of filters, by user name (cached: it is asked for every publication),
// by the check the broker makes of the publication itself: a user whose
// acl lets it publish under a filter only where a deny rule forbids it
// does not go ahead.
func safetyPublisher(acl mochi.Hook, filters []string) func(cl *mochi.Client) bool {
	h, ok := acl.(*authHook)
	if !ok {
		// Without users anyone may publish anything, junk flooders too:
		// giving every one the way ahead gave it to no one, and Home
		// Assistant's alarm waited behind its own commands again (review
		// of issue 12 item 5, M3). No publisher goes ahead then.
		return func(*mochi.Client) bool { return false }
	}
	var cache sync.Map // user name → bool
	return func(cl *mochi.Client) bool {
		user := string(cl.Properties.Username)
		if v, ok := cache.Load(user); ok {
			return v.(bool)
		}
		may := false
		for _, f := range filters {
			may = may || h.mayPublishUnder(user, f)
		}
		cache.Store(user, may)
		return may
	}
}

// mayPublishUnder reports whether user may publish to some topic filter
// matches, by the broker's own check (mayPublish, deny rules included),
// asked for topics standing for each way the filter meets one of the
// user's publish patterns (witnesses).
func (h *authHook) mayPublishUnder(user, filter string) bool {
	for _, p := range h.acl[user].publish {
		m, ok := filterMeet(p, filter)
		if !ok {
			continue
		}
		for _, w := range witnesses(m) {
			if h.mayPublish(user, w) {
				return true
			}
		}
	}
	return false
}

// filterMeet is the filter matching exactly the topics both a and b match
// (false: none): level by level the narrower, a # taking the other's rest.
func filterMeet(a, b string) (string, bool) {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	var m []string
	for i := 0; ; i++ {
		switch {
		case i < len(as) && as[i] == "#":
			return strings.Join(append(m, bs[i:]...), "/"), true
		case i < len(bs) && bs[i] == "#":
			return strings.Join(append(m, as[i:]...), "/"), true
		case i == len(as) && i == len(bs):
			return strings.Join(m, "/"), true
		case i == len(as) || i == len(bs):
			return "", false
		case as[i] == "+":
			m = append(m, bs[i])
		case bs[i] == "+" || as[i] == bs[i]:
			m = append(m, as[i])
		default:
			return "", false
		}
	}
}

// witnessLevel stands for "any level" in a witness topic: no pattern names
// it, so only a wildcard matches it.
const witnessLevel = "\x00"

// witnesses are topics standing for filter: each + a level no pattern
// names, and a # as no level, one and two. A pattern matches a witness
// only if it matches every topic of that shape: when a witness may be
// published, so may a real topic filter matches.
func witnesses(filter string) []string {
	t := strings.ReplaceAll(filter, "+", witnessLevel)
	base, ok := strings.CutSuffix(t, "#")
	if !ok {
		return []string{t}
	}
	one := base + witnessLevel
	out := []string{one, one + "/" + witnessLevel}
	if b := strings.TrimSuffix(base, "/"); b != "" {
		out = append(out, b)
	}
	return out
}

// class: until the bridge says which topics are safety, every one is.
func (bf *bridgeFlow) class(topic string) mochifix.Class {
	if f := bf.isSafety.Load(); f != nil && !(*f)(topic) {
		return mochifix.Bulk
	}
	return mochifix.Priority
}

func (bf *bridgeFlow) delayed(_ *mochi.Client, _ string, c mochifix.Class) {
	if m := bf.m.Load(); m != nil {
		(*m).Delayed(c == mochifix.Priority)
	}
}

func (bf *bridgeFlow) timeout(cl *mochi.Client, topic string, c mochifix.Class) {
	if m := bf.m.Load(); m != nil {
		(*m).Shed(c == mochifix.Priority)
	}
	if c == mochifix.Priority {
		bf.cut(cl, topic, "could not queue a safety message for the bridge")
		return
	}
	bf.logShed(topic)
}

// cut ends the bridge's connection: it has missed, or would miss, a safety
// message.
func (bf *bridgeFlow) cut(cl *mochi.Client, topic, why string) {
	bf.log.Error("embedded broker "+why+": ending its connection, so that it reads every safety value again", "topic", truncate([]byte(topic), 80), "client", cl.ID)
	cl.Stop(errBridgeStuck)
}

// logShed logs shed messages at most once every 10 s, with how many.
func (bf *bridgeFlow) logShed(topic string) {
	if n, due := bf.shed.Note(time.Now()); due {
		bf.log.Warn("embedded broker shed commands for the bridge: a client floods it", "shed", n, "last_topic", truncate([]byte(topic), 80))
	}
}

// dropped is told about a message mochi dropped for the bridge anyway
// (Flow should make that impossible): on a safety topic, the bridge must
// not go on without it.
func (bf *bridgeFlow) dropped(cl *mochi.Client, topic string) {
	if !bf.flow.Watch(cl) {
		return
	}
	bf.flow.Dropped(cl)
	if bf.class(topic) == mochifix.Priority {
		if m := bf.m.Load(); m != nil {
			(*m).Shed(true)
		}
		bf.cut(cl, topic, "dropped a safety message for the bridge")
	}
}

// Metrics counts, for the bridge, the messages for it the broker held back
// (Delayed) and those it shed or could not queue (Shed), by the bridge's
// queue they were for.
type Metrics interface {
	Delayed(safety bool)
	Shed(safety bool)
}

// SetBridge tells the broker which topics are the bridge's safety ones
// (isSafety, and the filters it matches) and where to count (the bridge's
// metrics); before, every topic counts as safety.
func (e *Broker) SetBridge(isSafety func(topic string) bool, filters []string, m Metrics) {
	if e.flow == nil {
		return
	}
	if isSafety != nil {
		e.flow.isSafety.Store(&isSafety)
		pub := safetyPublisher(e.flow.acl, filters)
		e.flow.safetyPub.Store(&pub)
	}
	if m != nil {
		e.flow.m.Store(&m)
	}
}
