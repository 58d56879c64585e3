package mochifix

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Flow gives chosen subscribers (Watch) flow control in place of mochi's
// drops. mochi v2.7.9 queues at most MaximumClientWritesPending messages
// per client and silently drops what does not fit (publishToClient): a
// flood of junk on any topic a subscriber reads can push out its alarms.
// Flow counts, for each watched client, the messages let into its queue and
// not yet written, and holds a message back, in the goroutine that delivers
// it (the publisher's own, so its socket stops being read: TCP
// backpressure), until there is room for it:
//
//   - mochi asks OnACLCheck (read) right before it queues a message for a
//     client, on every path: a live publication, a will, and the retained
//     messages a SUBSCRIBE sends; Flow admits the message there, and counts
//     it. mochi reports each PUBLISH written to the client with
//     OnPacketSent: the count goes down. So the count is never below the
//     length of mochi's queue, and as long as Limit never exceeds
//     MaximumClientWritesPending, mochi never drops for a watched client.
//     A pair of increments and decrements of one counter under one lock:
//     no race between two publishers that both saw one free slot, and no
//     reading of mochi's private fields.
//   - Two classes (Class): priority messages wait ahead of every bulk one
//     and may fill the queue; bulk ones are admitted only while the count
//     is under Limit[Bulk], so a flood of bulk messages never takes the
//     room kept for priority ones. Within a class, first come first served.
//   - A message that waited Wait[class] is not delivered to that client;
//     Timeout is told (bulk: drop it, counted; priority: the bridge ends
//     the client's connection rather than lose it silently).
//   - While the watched client's own read goroutine processes its
//     SUBSCRIBE (the retained messages it sends) or its PUBLISH (echoed
//     back to it), a Bulk message never waits: mochi would stop reading
//     the client's socket, pings too, and a flood from others could hold
//     it there a Wait per message, until its client ended the connection
//     for want of a PINGRESP. A Bulk message that does not fit then is not
//     delivered (Timeout is told): a flood can cost the client a retained
//     bulk message, never its link. A Priority message waits there at most
//     OwnWait (0: not at all), in turn with the others: a client that
//     reads frees room within moments, and one with more retained
//     priority messages than Limit gets them all. One that does not read
//     for OwnWait is told once (Timeout), and nothing waits there again
//     until a message is written to it. Other publishers' messages to the
//     client while it subscribes are treated alike (a hook cannot tell
//     goroutines apart). While it publishes, only its own publication is
//     (Flow tells it apart by its topic's identity, as below): others'
//     were shed at once whenever the client happened to publish, Home
//     Assistant's commands during a flood among them.
//   - mochi asks the same OnACLCheck, with the filter as topic, when the
//     client subscribes: Flow recognises these checks by the filter
//     strings' identity (it replaces them with copies of its own in
//     OnSubscribe) and neither counts nor holds them.
//   - Watched clients get every message at QoS 0 (OnSubscribe): a message
//     may be held in the watched client's own read goroutine (the retained
//     messages its SUBSCRIBE sends, its own publications echoed back to
//     it), where its PUBACKs could not be read; and mochi's inflight quota
//     (MaximumInflight) drops QoS 1 messages beyond it as silently as a
//     full queue. With a clean session QoS 1 gives such a client nothing
//     more: what is in flight when its connection ends is lost either way.
//
// mochi allows a check when any hook providing OnACLCheck allows it: the
// hook that decides permissions must not provide OnACLCheck itself (wrap
// it in WithoutACL) and is asked through ACL.
type Flow struct {
	mqtt.HookBase
	// Watch tells the clients that get flow control.
	Watch func(cl *mqtt.Client) bool
	// ACL decides permissions (the auth hook's OnACLCheck).
	ACL func(cl *mqtt.Client, topic string, write bool) bool
	// Class tells a topic's class; nil: every message is Priority.
	Class func(topic string) Class
	// Limit is, per class, how many messages may be queued for a watched
	// client when one of the class is let in; at most the server's
	// MaximumClientWritesPending.
	Limit [2]int
	// Wait is, per class, how long a message may be held back.
	Wait [2]time.Duration
	// OwnWait is how long a Priority message may be held back while the
	// watched client's own read goroutine processes its SUBSCRIBE or
	// PUBLISH; 0: it is not held there (Timeout is told at once).
	OwnWait time.Duration
	// Delayed is told about each message held back; Timeout about each
	// one that waited Wait and is not delivered. Either may be nil.
	Delayed func(cl *mqtt.Client, topic string, c Class)
	Timeout func(cl *mqtt.Client, topic string, c Class)
	// NoWait tells the publishers whose Bulk messages go ahead of every
	// other publisher's: a publisher that may send Priority messages too
	// (Home Assistant: its commands and the alarm on one connection). A
	// Bulk message held in its read goroutine holds every later message
	// of its connection, a Priority one too, in its socket: behind a
	// flood, it waited Wait[Bulk] per message; ahead of it, for the next
	// free room. Such publishers are still held, in turn among them: one
	// that floods is slowed like any other. May be nil.
	NoWait func(publisher *mqtt.Client) bool

	mu      sync.Mutex
	clients map[*mqtt.Client]*flowQueue
	// noWait holds, while a NoWait publisher's PUBLISH is processed, its
	// topic (Flow's own copy, told apart by identity as the SUBSCRIBE
	// checks) by publisher.
	noWait       map[*mqtt.Client]*byte
	noWaitTopics map[*byte]int
}

// Class is a message's class for Flow.
type Class int

// The classes: Priority messages go first and may fill the queue.
const (
	Priority Class = iota
	Bulk
)

// closedPoll is how often a held message checks whether its client is
// gone: the client's own read goroutine may be the one holding it, and
// cannot report its own disconnection meanwhile.
const closedPoll = 20 * time.Millisecond

// flowQueue is one watched client's count and waiters.
type flowQueue struct {
	queued  int                // let in and not yet written
	waiting [2][]chan struct{} // per class, oldest first; closed once let in
	checks  map[*byte]struct{} // the filters of the SUBSCRIBE being checked
	gone    chan struct{}      // closed when the client disconnects
	// front is how many of waiting[Bulk], at its head, are NoWait
	// publishers' (they go ahead of the others).
	front int
	// own is set while the client's own read goroutine processes its
	// SUBSCRIBE (or a PUBLISH without a topic name): a message held there
	// stops mochi reading the client's socket (its pings too), so only a
	// Priority one waits meanwhile, at most OwnWait.
	own bool
	// pub is the topic (Flow's copy) of the client's own PUBLISH being
	// processed: its delivery back to the client is in the client's read
	// goroutine, as own's messages.
	pub *byte
	// stalled is set when a message waited OwnWait in vain, until one is
	// written to the client: nothing waits OwnWait again meanwhile.
	stalled bool
}

// WithoutACL is h without its OnACLCheck, for Flow to ask instead.
type WithoutACL struct{ mqtt.Hook }

// Provides reports h's events but OnACLCheck.
func (w WithoutACL) Provides(b byte) bool { return b != mqtt.OnACLCheck && w.Hook.Provides(b) }

// ID names the hook.
func (f *Flow) ID() string { return "mochifix-flow" }

// Provides reports the events Flow uses.
func (f *Flow) Provides(b byte) bool {
	switch b {
	case mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnPublish, mqtt.OnPacketProcessed,
		mqtt.OnPacketSent, mqtt.OnDisconnect:
		return true
	}
	return false
}

// queue returns cl's queue, made on first use; nil once cl is closed.
// Called with f.mu held.
func (f *Flow) queue(cl *mqtt.Client) *flowQueue {
	if q, ok := f.clients[cl]; ok {
		return q
	}
	if cl.Closed() {
		return nil
	}
	if f.clients == nil {
		f.clients = map[*mqtt.Client]*flowQueue{}
	}
	q := &flowQueue{gone: make(chan struct{})}
	f.clients[cl] = q
	return q
}

// OnSubscribe gives a watched client QoS 0 and marks its filters, whose
// permission checks follow.
func (f *Flow) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if !f.Watch(cl) {
		return pk
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queue(cl)
	if q == nil {
		return pk
	}
	q.checks = map[*byte]struct{}{}
	q.own = true
	filters := make([]packets.Subscription, len(pk.Filters))
	for i, s := range pk.Filters {
		s.Qos = 0
		if s.Filter != "" {
			s.Filter = strings.Clone(s.Filter)
			q.checks[unsafe.StringData(s.Filter)] = struct{}{}
		}
		filters[i] = s
	}
	pk.Filters = filters
	return pk
}

// OnSubscribed forgets the filters that were not checked.
func (f *Flow) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if !f.Watch(cl) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.clients[cl]; q != nil {
		q.checks = nil
	}
}

// OnPublish marks a watched client's own PUBLISH being processed: it may
// be delivered back to the client, in its read goroutine; its topic is
// replaced by a copy Flow recognises in admit. So is a NoWait publisher's.
func (f *Flow) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if f.Watch(cl) {
		if pk.TopicName == "" {
			f.setOwn(cl, true) // a topic alias: the whole window is the client's
			return pk, nil
		}
		pk.TopicName = strings.Clone(pk.TopicName)
		f.mu.Lock()
		defer f.mu.Unlock()
		if q := f.queue(cl); q != nil {
			q.pub = unsafe.StringData(pk.TopicName)
		}
		return pk, nil
	}
	if f.NoWait == nil || pk.TopicName == "" || !f.NoWait(cl) {
		return pk, nil
	}
	pk.TopicName = strings.Clone(pk.TopicName)
	p := unsafe.StringData(pk.TopicName)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgetNoWait(cl)
	if f.noWait == nil {
		f.noWait, f.noWaitTopics = map[*mqtt.Client]*byte{}, map[*byte]int{}
	}
	f.noWait[cl] = p
	f.noWaitTopics[p]++
	return pk, nil
}

// forgetNoWait ends what OnPublish marked for a NoWait publisher. Called
// with f.mu held.
func (f *Flow) forgetNoWait(cl *mqtt.Client) {
	p, ok := f.noWait[cl]
	if !ok {
		return
	}
	delete(f.noWait, cl)
	if f.noWaitTopics[p]--; f.noWaitTopics[p] <= 0 {
		delete(f.noWaitTopics, p)
	}
}

// OnPacketProcessed ends what OnSubscribe or OnPublish marked.
func (f *Flow) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	t := pk.FixedHeader.Type
	if t != packets.Subscribe && t != packets.Publish {
		return
	}
	if f.Watch(cl) {
		f.setOwn(cl, false)
		return
	}
	if t == packets.Publish && f.NoWait != nil {
		f.mu.Lock()
		f.forgetNoWait(cl)
		f.mu.Unlock()
	}
}

func (f *Flow) setOwn(cl *mqtt.Client, own bool) {
	if !f.Watch(cl) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.queue(cl); q != nil {
		q.own = own
		q.pub = nil
	}
}

// OnACLCheck asks ACL, then, for a message to a watched client, waits
// until it may be queued.
func (f *Flow) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !f.ACL(cl, topic, write) {
		return false
	}
	if write || !f.Watch(cl) {
		return true
	}
	return f.admit(cl, topic)
}

func (f *Flow) class(topic string) Class {
	if f.Class == nil {
		return Priority
	}
	return f.Class(topic)
}

// admit lets a message on topic into cl's queue, holding it back until
// there is room; false when it waited too long or cl is gone.
func (f *Flow) admit(cl *mqtt.Client, topic string) bool {
	c := f.class(topic)
	f.mu.Lock()
	q := f.queue(cl)
	if q == nil || cl.Closed() {
		f.mu.Unlock()
		return true // mochi does not queue for a closed client
	}
	if q.checks != nil && topic != "" {
		if _, ok := q.checks[unsafe.StringData(topic)]; ok {
			delete(q.checks, unsafe.StringData(topic))
			f.mu.Unlock()
			return true // a SUBSCRIBE's permission check, not a message
		}
	}
	front := c == Bulk && topic != "" && f.noWaitTopics[unsafe.StringData(topic)] > 0
	own := q.own || topic != "" && q.pub == unsafe.StringData(topic)
	if f.room(q, c) || own && c == Priority && q.queued < f.Limit[c] ||
		front && len(q.waiting[Priority]) == 0 && q.front == 0 && q.queued < f.Limit[c] {
		q.queued++
		f.mu.Unlock()
		return true
	}
	wait := f.Wait[c]
	if own {
		// In the client's own read goroutine (or beside it): only a
		// priority message waits, briefly (OwnWait).
		if c == Bulk || f.OwnWait <= 0 || q.stalled {
			f.mu.Unlock()
			if f.Timeout != nil {
				f.Timeout(cl, topic, c)
			}
			return false
		}
		wait = f.OwnWait
	}
	ch := make(chan struct{})
	if front {
		q.waiting[c] = slices.Insert(q.waiting[c], q.front, ch)
		q.front++
	} else {
		q.waiting[c] = append(q.waiting[c], ch)
	}
	f.mu.Unlock()
	if f.Delayed != nil {
		f.Delayed(cl, topic, c)
	}
	return f.await(cl, q, c, ch, topic, wait, own)
}

// room reports whether a message of class c may be queued now, ahead of
// nobody. Called with f.mu held.
func (f *Flow) room(q *flowQueue, c Class) bool {
	if len(q.waiting[Priority]) > 0 || c == Bulk && len(q.waiting[Bulk]) > 0 {
		return false
	}
	return q.queued < f.Limit[c]
}

// await holds a message let in when ch is closed, at most wait; own: it
// is held while cl's own read goroutine processes a packet.
func (f *Flow) await(cl *mqtt.Client, q *flowQueue, c Class, ch chan struct{}, topic string, wait time.Duration, own bool) bool {
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	poll := time.NewTicker(closedPoll)
	defer poll.Stop()
	for {
		select {
		case <-ch:
			return true
		case <-q.gone:
			return false
		case <-poll.C:
			if cl.Closed() && f.cancel(q, c, ch) {
				return false
			}
		case <-timeout.C:
			if !f.cancel(q, c, ch) {
				return true // let in meanwhile
			}
			if own {
				f.mu.Lock()
				q.stalled = true
				f.mu.Unlock()
			}
			if f.Timeout != nil {
				f.Timeout(cl, topic, c)
			}
			return false
		}
	}
}

// cancel takes ch off q's waiters; false if it was let in meanwhile.
func (f *Flow) cancel(q *flowQueue, c Class, ch chan struct{}) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, w := range q.waiting[c] {
		if w == ch {
			q.waiting[c] = append(q.waiting[c][:i:i], q.waiting[c][i+1:]...)
			if c == Bulk && i < q.front {
				q.front--
			}
			f.grant(q)
			return true
		}
	}
	return false
}

// grant lets in the waiters there is room for, priority first. Called
// with f.mu held.
func (f *Flow) grant(q *flowQueue) {
	for _, c := range []Class{Priority, Bulk} {
		for len(q.waiting[c]) > 0 && q.queued < f.Limit[c] {
			close(q.waiting[c][0])
			q.waiting[c] = q.waiting[c][1:]
			q.queued++
			if c == Bulk && q.front > 0 {
				q.front--
			}
		}
		if len(q.waiting[c]) > 0 {
			return // nothing of a lower class goes ahead of it
		}
	}
}

// OnPacketSent counts a PUBLISH written to a watched client out of its
// queue, and lets in who now fits.
func (f *Flow) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish || !f.Watch(cl) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.clients[cl]
	if q == nil {
		return
	}
	if q.queued > 0 {
		q.queued--
	}
	q.stalled = false
	f.grant(q)
}

// OnDisconnect forgets a watched client and wakes its waiters.
func (f *Flow) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgetNoWait(cl)
	if q, ok := f.clients[cl]; ok {
		delete(f.clients, cl)
		close(q.gone)
	}
}

// Dropped tells Flow that mochi dropped a message it had let into cl's
// queue (a hook that changed the subscriptions after Flow, a full inflight
// quota): it is counted out, or the count never went down again.
func (f *Flow) Dropped(cl *mqtt.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.clients[cl]; q != nil && q.queued > 0 {
		q.queued--
		f.grant(q)
	}
}

// Queued is how many messages Flow let into cl's queue that are not yet
// written (0 for a client it does not watch).
func (f *Flow) Queued(cl *mqtt.Client) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.clients[cl]; q != nil {
		return q.queued
	}
	return 0
}
