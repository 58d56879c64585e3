package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
	mochi "github.com/mochi-mqtt/server/v2"
	mochipk "github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/broker"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// zigbeeSite is a bridge on its embedded broker (no users) whose alarm
// entry expects n Zigbee detectors, each with its availability, all
// retained clear and online before the test goes on: 2n retained safety
// values.
func zigbeeSite(t *testing.T, n int) (*linked, string) {
	t.Helper()
	l, listen, retain := zigbeeBroker(t, config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false,
		Expect: n, MaxSources: n, AvailabilityTopic: "zigbee2mqtt/+/availability"})
	var msgs [][2]string
	for i := range n {
		msgs = append(msgs, [2]string{fmt.Sprintf("zigbee2mqtt/smoke-%03d", i), `{"smoke":false}`},
			[2]string{fmt.Sprintf("zigbee2mqtt/smoke-%03d/availability", i), "online"})
	}
	retain(append(msgs, [2]string{"db/alarm", "OFF"})...)
	// mochi retains a message before it delivers it: once the bridge has
	// them all, the broker holds them all.
	l.waitPower("0", true, 2*wait, "every detector clear and online: the fail-safe door locks")
	testbroker.Eventually(t, wait, l.connected, "link proven")
	return l, listen
}

// zigbeeBroker is a bridge on its embedded broker (no users) with alarm
// added to its alarm entries, and retain, which publishes retained
// messages (topic, payload) in one write, in order, as Zigbee2MQTT would.
func zigbeeBroker(t *testing.T, alarm config.Alarm) (l *linked, listen string, retain func(msgs ...[2]string)) {
	t.Helper()
	cfg := testConfig("")
	listen = testbroker.FreeAddr(t)
	cfg.EmbeddedBroker = config.EmbeddedBroker{Listen: listen}
	cfg.Alarms = append(cfg.Alarms, alarm)
	l = runLinked(t, cfg)
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect("tcp://"+listen, "probe", testbroker.ClientOptions{}) == nil
	}, "embedded broker listening on %s", listen)
	conn, code, err := testbroker.RawConnect(listen, "z2m", testbroker.ClientOptions{}, nil)
	if err != nil || code != 0 {
		t.Fatalf("zigbee2mqtt: code %d, %v", code, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() { _, _ = bufio.NewReader(conn).WriteTo(devNull{}) }()
	return l, listen, func(msgs ...[2]string) {
		t.Helper()
		var b bytes.Buffer
		for _, m := range msgs {
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.TopicName, p.Payload, p.Retain = m[0], []byte(m[1]), true
			if err := p.Write(&b); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// Review of issue 12 (M2): mochi sends a subscription's retained messages
// in the bridge's own read goroutine, while it handles the bridge's
// SUBSCRIBE, where Flow never waited: with more retained safety values
// than the bridge's queue in the broker holds (a site with 300 Zigbee
// detectors and their availability: 600), those that did not fit at once
// cut the bridge's connection; it reconnected, subscribed, and was cut
// again, for ever, never getting its alarm state (its fail-safe doors
// released all along). Now a safety message waits there for room too: the
// bridge reads while the broker writes.
func TestEmbeddedBrokerRetainedSafetyBurstOnSubscribe(t *testing.T) {
	const n = 300
	l, _ := zigbeeSite(t, n)
	eb := embeddedOf(t, l)
	reconnects := testutil.ToFloat64(l.b.m.mqttReconnects)
	cl, ok := eb.Server().Clients.Get(l.cfg.ClientID())
	if !ok {
		t.Fatal("no bridge client")
	}
	cl.Stop(errors.New("test: the bridge reconnects and reads every retained value again"))
	testbroker.Eventually(t, wait, func() bool { return testutil.ToFloat64(l.b.m.mqttReconnects) > reconnects }, "the bridge reconnected")
	testbroker.Eventually(t, 2*wait, func() bool { return l.connected() && l.power("0") },
		"the bridge back with every retained value: link proven, the fail-safe door locked (reconnections %v, cut %d times)",
		testutil.ToFloat64(l.b.m.mqttReconnects)-reconnects, l.log.count("ending its connection"))
	if got := testutil.ToFloat64(l.b.m.mqttReconnects) - reconnects; got != 1 {
		t.Errorf("the bridge connected %v times after one cut, want 1", got)
	}
	if n := l.log.count("ending its connection"); n > 0 {
		t.Errorf("the broker cut the bridge %d times", n)
	}
	if n := testutil.ToFloat64(l.b.m.brokerShed.WithLabelValues(queueSafety)); n > 0 {
		t.Errorf("%v safety messages could not be queued for the bridge", n)
	}
}

// bridgeRecorder records, for each connection of the bridge's client, the
// filters of its SUBSCRIBEs and the topics of the messages written to it,
// in order.
type bridgeRecorder struct {
	mochi.HookBase
	id    string
	mu    sync.Mutex
	conns []*mochi.Client
	subs  map[*mochi.Client][][]string
	sent  map[*mochi.Client][]string
}

func (r *bridgeRecorder) ID() string { return "test-bridge-recorder" }

func (r *bridgeRecorder) Provides(b byte) bool {
	return b == mochi.OnSubscribe || b == mochi.OnPacketSent
}

func (r *bridgeRecorder) conn(cl *mochi.Client) {
	if r.subs == nil {
		r.subs, r.sent = map[*mochi.Client][][]string{}, map[*mochi.Client][]string{}
	}
	if _, ok := r.subs[cl]; !ok {
		r.conns = append(r.conns, cl)
		r.subs[cl] = nil
	}
}

func (r *bridgeRecorder) OnSubscribe(cl *mochi.Client, pk mochipk.Packet) mochipk.Packet {
	if cl.ID != r.id {
		return pk
	}
	var f []string
	for _, s := range pk.Filters {
		f = append(f, s.Filter)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn(cl)
	r.subs[cl] = append(r.subs[cl], f)
	return pk
}

func (r *bridgeRecorder) OnPacketSent(cl *mochi.Client, pk mochipk.Packet, _ []byte) {
	if cl.ID != r.id || pk.FixedHeader.Type != mochipk.Publish {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn(cl)
	r.sent[cl] = append(r.sent[cl], pk.TopicName)
}

// last returns what was recorded for the bridge's latest connection.
func (r *bridgeRecorder) last() (subs [][]string, sent []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.conns) == 0 {
		return nil, nil
	}
	cl := r.conns[len(r.conns)-1]
	return slices.Clone(r.subs[cl]), slices.Clone(r.sent[cl])
}

// Review of issue 12 (1c): the bridge subscribes to its safety filters in
// a SUBSCRIBE of their own, before the one for commands, discovery and
// republish. The broker sends a subscription's retained messages before it
// reads the next packet, so every retained safety value reaches the bridge
// before any command of a flood running while it reconnects. Before, one
// SUBSCRIBE held every filter (in a map's random order): the flood's
// commands were let in between the retained values.
func TestEmbeddedBrokerSafetySubscribedFirst(t *testing.T) {
	const n = 150
	l, listen := zigbeeSite(t, n)
	eb := embeddedOf(t, l)
	rec := &bridgeRecorder{id: l.cfg.ClientID()}
	if err := eb.Server().AddHook(rec, nil); err != nil {
		t.Fatal(err)
	}
	f := loginFlooder(t, listen, "", "flood-0", false)
	testbroker.Eventually(t, wait, func() bool { return f.sent.Load() > 1000 }, "the junk command flood running")
	reconnects := testutil.ToFloat64(l.b.m.mqttReconnects)
	cl, ok := eb.Server().Clients.Get(l.cfg.ClientID())
	if !ok {
		t.Fatal("no bridge client")
	}
	cl.Stop(errors.New("test: the bridge reconnects during the flood"))
	testbroker.Eventually(t, wait, func() bool { return testutil.ToFloat64(l.b.m.mqttReconnects) > reconnects }, "the bridge reconnected")
	testbroker.Eventually(t, 2*wait, func() bool { return l.connected() && l.power("0") }, "the bridge back with every retained value during the flood")
	f.close()

	subs, sent := rec.last()
	if len(subs) < safetyGroups+1 {
		t.Fatalf("the bridge's SUBSCRIBEs on its new connection: %q, want the safety filters (values, then availability), then the others", subs)
	}
	safetySubs := slices.Concat(subs[:safetyGroups]...)
	topics := l.b.topics
	for _, f := range []string{"zigbee2mqtt/+", "zigbee2mqtt/+/availability", "db/alarm", topics.Heartbeat, topics.AlarmReset, topics.AlarmLatched} {
		if !slices.Contains(safetySubs, f) {
			t.Errorf("the bridge's first SUBSCRIBEs %q lack the safety filter %s", subs[:safetyGroups], f)
		}
	}
	for _, f := range []string{topics.DoorCommandWild, topics.Republish} {
		if slices.Contains(safetySubs, f) {
			t.Errorf("the bridge's first SUBSCRIBEs %q hold %s, not a safety filter", subs[:safetyGroups], f)
		}
		if !slices.Contains(subs[safetyGroups], f) {
			t.Errorf("the bridge's SUBSCRIBE after the safety ones %q lacks %s", subs[safetyGroups], f)
		}
	}
	cmd := newTopicPattern(topics.DoorCommandWild)
	firstCmd, lastSafety, safety := -1, -1, 0
	for i, topic := range sent {
		if _, ok := cmd.match(topic); ok && firstCmd < 0 {
			firstCmd = i
		}
		if strings.HasPrefix(topic, "zigbee2mqtt/") {
			lastSafety, safety = i, safety+1
		}
	}
	if safety != 2*n {
		t.Errorf("%d retained Zigbee values written to the bridge, want %d", safety, 2*n)
	}
	if firstCmd < 0 {
		t.Fatal("no command of the flood reached the bridge after it subscribed")
	}
	if firstCmd < lastSafety {
		t.Errorf("a junk command (message %d) reached the bridge before its last retained safety value (message %d)", firstCmd, lastSafety)
	}
}

// embeddedOf is the embedded broker l's bridge started.
func embeddedOf(t *testing.T, l *linked) *broker.Broker {
	t.Helper()
	// The broker listens a moment before the bridge records it: a client
	// can already connect while Load still returns nil.
	testbroker.Eventually(t, wait, func() bool { return l.b.embedded.Load() != nil }, "the bridge runs its embedded broker")
	return l.b.embedded.Load()
}
