package bridge

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/pahofix"
	"github.com/doorbridge/doorbridge/mqttclient"
)

// publishQueue bounds the messages waiting to be handed to paho. The loop
// never blocks on the network: when the queue is full a message is dropped
// and the whole state is republished once there is room.
const publishQueue = 4096

type pubMsg struct {
	topic    string
	payload  string
	retained bool
	qos      byte
	flushed  chan struct{} // non-nil: a marker, closed when reached
}

// mqttLink is the bridge's MQTT connection. paho's callbacks only hand
// events to the loop; publishing goes through a bounded queue drained by
// its own goroutine.
type mqttLink struct {
	client   paho.Client
	events   chan<- event
	log      *slog.Logger
	m        *metrics
	topics   Topics
	username string
	reporter *mqttclient.Reporter
	in       *inbound
	conn     atomic.Pointer[linkConn] // the connection paho dialed last
	dials    atomic.Uint64            // connections dialed: each one's gen
	gen      atomic.Uint64            // the latest connection paho reported up
	queue    chan pubMsg
	probes   chan pubMsg // heartbeat probes: sent before the queue (publisher)
	// recoverFatal, deferred by paho's callbacks, forces every relay off
	// on a panic there (Bridge.recoverFatal); the default lets it through.
	recoverFatal func(name string)
	dropped      atomic.Bool
	done         chan struct{}
	pubDone      chan struct{}
}

// newMQTTLink prepares the connection to the brokers urls, tried in order
// on every (re)connection. Every reason a broker cannot be reached is logged
// in plain words, once until a connection succeeds.
func newMQTTLink(cfg *config.Config, urls []string, topics Topics, events chan<- event, in *inbound, log *slog.Logger, m *metrics) (*mqttLink, error) {
	password, err := cfg.MQTTPassword()
	if err != nil {
		return nil, err
	}
	l := &mqttLink{
		events:   events,
		log:      log.With("component", "mqtt"),
		m:        m,
		topics:   topics,
		in:       in,
		username: cfg.MQTT.Username,
		queue:    make(chan pubMsg, publishQueue),
		probes:   make(chan pubMsg, 1),

		recoverFatal: func(string) {},
		done:         make(chan struct{}),
		pubDone:      make(chan struct{}),
	}
	for _, w := range cfg.BrokerWarnings(time.Now()) {
		l.log.Warn(w)
	}
	l.reporter = mqttclient.NewReporter(func(broker, reason string) {
		l.log.Error("MQTT broker unreachable; retrying", "broker", broker, "reason", reason)
	}, func(broker, reason string) {
		l.log.Debug("MQTT connection attempt failed", "broker", broker, "reason", reason)
	})
	hb := cfg.Watchdog.HeartbeatTimeout
	keepAlive := max(2*time.Second, 2*hb).Round(time.Second)
	opts, err := mqttclient.Options(cfg, mqttclient.Settings{
		URLs: urls, Username: cfg.MQTT.Username, Password: password, Timeout: max(hb, 2*time.Second),
		Report: l.reporter.Report, Track: l.track, MaxPayload: maxInbound,
	})
	if err != nil {
		return nil, err
	}
	opts.SetClientID(cfg.ClientID()).
		// A clean session: commands never queue across an outage.
		SetCleanSession(true).
		SetStore(pahofix.Store()).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(500*time.Millisecond).
		SetMaxReconnectInterval(2*time.Second).
		SetKeepAlive(keepAlive).
		SetPingTimeout(hb).
		SetWriteTimeout(hb).
		// One router goroutine calls the handler for every message, in the
		// order the broker delivered them (R21); the handler only queues.
		SetOrderMatters(true).
		SetWill(topics.Availability, "offline", 1, true).
		// Every message goes to one handler: no per-filter routes, so paho
		// matches nothing per message (cheaper under a flood), and a message
		// matching two filters is handed over once.
		SetDefaultPublishHandler(l.onMessage).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(l.onConnectionLost)
	l.client = paho.NewClient(opts)
	return l, nil
}

// linkConn is a connection with its generation: its identity for the loop.
type linkConn struct {
	*mqttclient.Conn
	gen uint64
}

// track gives every connection dialed its own generation; its loss is
// reported by the connection itself, when paho closes it.
func (l *mqttLink) track(c *mqttclient.Conn) {
	gen := l.dials.Add(1)
	// In a goroutine: the loop itself closes connections (dropConnection),
	// and must never wait on its own event channel. A late report is fine:
	// it names its connection.
	c.OnClose(func(err error) {
		go func() {
			defer l.recoverFatal("mqtt connection closed")
			l.send(evDisconnected{gen: gen, err: err})
		}()
	})
	l.conn.Store(&linkConn{Conn: c, gen: gen})
}

// onConnect is paho's OnConnect, run in a goroutine of its own, possibly
// late: it reports the connection paho dialed last, only if the broker
// accepted it and it is still open. A late call finds a newer connection
// (reported twice: the loop ignores the repeat) or a closed one (its loss is
// already on its way: nothing to report).
func (l *mqttLink) onConnect(paho.Client) {
	defer l.recoverFatal("mqtt OnConnect")
	c := l.conn.Load()
	if c == nil || !c.Live() {
		return
	}
	for {
		cur := l.gen.Load()
		if cur >= c.gen || l.gen.CompareAndSwap(cur, c.gen) {
			break
		}
	}
	l.log.Info("MQTT broker accepted the connection", "broker", l.reporter.Connected(), "gen", c.gen)
	l.send(evConnected{gen: c.gen})
}

// onMessage is paho's handler for every message, called from its router
// goroutine in broker order: it only queues, never blocks. Messages come
// only from the connection paho reported up last (paho stops the old
// connection's router before it reconnects, and the bridge subscribes
// only after OnConnect), so l.gen names theirs.
func (l *mqttLink) onMessage(_ paho.Client, msg paho.Message) {
	defer l.recoverFatal("mqtt message handler")
	if topic, ok := strings.CutPrefix(msg.Topic(), mqttclient.OversizedTopic); ok {
		l.in.oversized(l.gen.Load(), topic, msg.Retained()) // skipped under paho (mqttclient/bigfilter.go)
		return
	}
	l.in.deliver(l.gen.Load(), msg.Topic(), msg.Payload(), msg.Retained())
}

// onConnectionLost only logs paho's reason: paho may call it after the next
// connection is up, so the loss itself is reported by the connection
// (track), which knows which one it was.
func (l *mqttLink) onConnectionLost(_ paho.Client, err error) {
	defer l.recoverFatal("mqtt ConnectionLost")
	l.log.Debug("paho: connection lost", "err", err)
}

// dropConnection closes the connection under paho: paho sees it fail and
// reconnects, to the next of mqtt.urls when there are several. The loop calls
// it when the heartbeat stopped coming back on a connection that looks open
// (a silent broker or link), instead of waiting for paho's keepalive.
func (l *mqttLink) dropConnection() {
	if c := l.conn.Load(); c != nil {
		c.Close()
	}
}

// dropGen drops connection gen if it is still the current one (a safety
// message of it could not be queued).
func (l *mqttLink) dropGen(gen uint64) {
	if c := l.conn.Load(); c != nil && c.gen == gen {
		c.Close()
	}
}

// send hands an event to the loop; it gives up once the link is stopped.
func (l *mqttLink) send(ev event) {
	select {
	case l.events <- ev:
	case <-l.done:
	}
}

func (l *mqttLink) start() {
	go l.publisher()
	// With ConnectRetry, Connect keeps trying in the background; its token
	// is not waited on: the loop learns of the connection from OnConnect.
	l.client.Connect()
}

func (l *mqttLink) publisher() {
	defer close(l.pubDone)
	defer l.recoverFatal("mqtt publisher")
	for {
		// A heartbeat probe first: thousands of queued publishes (say,
		// answers to a flood of junk) must not delay the link's proof.
		select {
		case p := <-l.probes:
			l.client.Publish(p.topic, p.qos, p.retained, p.payload)
			continue
		default:
		}
		select {
		case p := <-l.probes:
			l.client.Publish(p.topic, p.qos, p.retained, p.payload)
		case p := <-l.queue:
			if p.flushed != nil {
				close(p.flushed)
				continue
			}
			l.client.Publish(p.topic, p.qos, p.retained, p.payload)
		case <-l.done:
			return
		}
	}
}

// probe queues a heartbeat probe (QoS 0, never retained) ahead of every
// other publish. While one is still waiting, a newer one is dropped: the
// waiting one proves the link as well.
func (l *mqttLink) probe(payload string) {
	if l == nil {
		return
	}
	select {
	case l.probes <- pubMsg{topic: l.topics.Heartbeat, payload: payload}:
	default:
	}
}

// publish queues a message without blocking. It reports false when the
// queue was full (the state is then republished in full on a later tick).
func (l *mqttLink) publish(topic, payload string, retained bool) bool {
	if l == nil {
		return false
	}
	qos := byte(1)
	if topic == l.topics.Heartbeat {
		qos = 0
	}
	select {
	case l.queue <- pubMsg{topic: topic, payload: payload, retained: retained, qos: qos}:
		return true
	default:
		l.m.publishDropped.Inc()
		l.dropped.Store(true)
		return false
	}
}

// retryDropped calls republish once the queue has room after drops.
func (l *mqttLink) retryDropped(republish func()) {
	if l != nil && len(l.queue) < publishQueue/2 && l.dropped.Swap(false) {
		republish()
	}
}

// subscribe subscribes to groups of filters for connection generation
// gen, off the loop, one SUBSCRIBE per group, in order, each once the one
// before is acknowledged, retrying a group while that connection lasts, and
// reports success. A broker reads a client's packets in order, and sends a
// subscription's retained messages before it reads the next one (mochi and
// mosquitto both): the first group's retained values reach the bridge
// before any message that only a later group matches.
func (l *mqttLink) subscribe(gen uint64, groups [][]string) {
	go func() {
		defer l.recoverFatal("mqtt subscribe")
		for i := 0; l.gen.Load() == gen; {
			if i == len(groups) {
				l.send(evSubscribed{gen: gen})
				return
			}
			// Every group at QoS 0, the retained discovery configs too:
			// they must come before the heartbeat echo as well (at QoS 1 a
			// stock mosquitto let the echo overtake them, and a removed
			// input's stub was published again).
			err := l.subscribeGroup(groups[i], safetyQoS)
			if err == nil {
				i++
				continue
			}
			l.log.Error("subscribe failed; retrying", "err", err)
			select {
			case <-time.After(time.Second):
			case <-l.done:
				return
			}
		}
	}()
}

// resubscribe subscribes to one safety filter again, off the loop, so
// that the broker sends its retained message again (askAvailability).
// Subscribing again to a filter already held replaces it (MQTT 3.8.4).
func (l *mqttLink) resubscribe(gen uint64, filter string) {
	if l == nil || l.client == nil {
		return
	}
	go func() {
		defer l.recoverFatal("mqtt subscribe")
		if l.gen.Load() != gen {
			return
		}
		if err := l.subscribeGroup([]string{filter}, safetyQoS); err != nil {
			l.log.Warn("could not ask the broker again for an alarm source's availability", "topic", filter, "err", err)
		}
	}()
}

// safetyQoS is the QoS of the safety filters' groups. At QoS 1 a
// stock mosquitto sends a subscription's retained messages 20 in flight at
// a time and queues the rest (1000 at most: max_queued_messages), while the
// QoS 0 heartbeat echo goes out at once: on a site with hundreds of
// retained detector values the echo overtook them (the loop then took its
// alarm state as complete) and past 1000 the last were dropped, a retained
// fire among them (review 12 F1). At QoS 0 they are written in order, none
// queued or dropped. Nothing is lost by it: the session is clean, so a
// message in flight when a connection ends is not resent at QoS 1 either,
// and a lost connection is a hazard, after which every retained value is
// read again.
const safetyQoS = 0

// subscribeGroup subscribes to filters in one SUBSCRIBE at qos and waits
// for its SUBACK.
func (l *mqttLink) subscribeGroup(filters []string, qos byte) error {
	if len(filters) == 0 {
		return nil
	}
	m := make(map[string]byte, len(filters))
	for _, f := range filters {
		m[f] = qos
	}
	tok := l.client.SubscribeMultiple(m, nil) // nil: the default handler (onMessage)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("no SUBACK within 5s")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	l.checkGranted(tok, l.username)
	return nil
}

// checkGranted logs the filters a SUBACK refused (an ACL that does not let
// the bridge read them). What was granted works; an alarm topic that was
// refused stays unknown, so it keeps the alarm hazard raised.
func (l *mqttLink) checkGranted(tok paho.Token, username string) {
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return
	}
	var refused []string
	for f, qos := range st.Result() {
		if qos == 0x80 {
			refused = append(refused, f)
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		l.log.Error("the broker refused subscriptions: let mqtt.username read them in its ACL", "username", username, "filters", refused)
	}
}

// stop drains the queue, publishes offline and disconnects, all within timeout.
func (l *mqttLink) stop(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	marker := make(chan struct{})
	select {
	case l.queue <- pubMsg{flushed: marker}:
		select {
		case <-marker:
		case <-time.After(time.Until(deadline) / 2):
		}
	default:
	}
	if l.client.IsConnectionOpen() {
		tok := l.client.Publish(l.topics.Availability, 1, true, "offline")
		if !tok.WaitTimeout(time.Until(deadline)) || tok.Error() != nil {
			l.log.Warn("could not publish offline", "err", tok.Error())
		}
	}
	close(l.done)
	<-l.pubDone
	l.client.Disconnect(250)
}

// unsubscribeDiscovery ends the discovery wildcard subscription of
// connection gen: it is there only to find this bridge's stale devices in
// the retained configs, which the broker delivered before the first
// heartbeat echo. Afterwards it would only let anyone who can publish
// under the discovery prefix keep the bridge busy.
func (l *mqttLink) unsubscribeDiscovery(gen uint64, filter string) {
	if l == nil {
		return
	}
	go func() {
		defer l.recoverFatal("mqtt unsubscribe")
		tok := l.client.Unsubscribe(filter)
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil && l.gen.Load() == gen {
				l.log.Debug("unsubscribe from discovery failed", "err", err)
			}
		case <-time.After(5 * time.Second):
		case <-l.done:
		}
	}()
}
