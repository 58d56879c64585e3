package bridge

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
	"github.com/doorbridge/doorbridge/mqttclient"
)

// orderRounds is how many back-to-back pairs each ordering test sends. With
// paho's unordered delivery (43e9a8a) about half of them ended wrong.
const orderRounds = 15

// publishBackToBack publishes msgs (topic, payload) at QoS 1 back to back
// (none waits for the previous PUBACK), from one client: MQTT keeps their
// order up to the bridge.
func publishBackToBack(t *testing.T, c *testbroker.Client, msgs ...[2]string) {
	t.Helper()
	var toks []paho.Token
	for _, m := range msgs {
		toks = append(toks, c.Paho().Publish(m[0], 1, false, m[1]))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// UNLOCK then LOCK (and LOCK then UNLOCK) on a fail-secure strike, back to
// back: once both are applied, the door is in the state of the last (R21).
func TestCommandsAppliedInBrokerOrder(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	set := h.topic("fsec", "set")
	accepted := func() int { return int(testutil.ToFloat64(h.b.m.commands.WithLabelValues("fsec", "accepted"))) }
	for i := range orderRounds {
		first, last, want := "UNLOCK", "LOCK", false
		if i%2 == 1 {
			first, last, want = "LOCK", "UNLOCK", true
		}
		before := accepted()
		publishBackToBack(t, h.c, [2]string{set, first}, [2]string{set, last})
		testbroker.Eventually(t, wait, func() bool { return accepted() == before+2 && h.power("1") == want },
			"round %d: %s then %s: both accepted and then the strike powered=%v (the state of the last)", i, first, last, want)
	}
}

// With alarm_latch false, alarm OFF then ON back to back ends in alarm. A
// RESET sent after them by the same client is the judge: it is refused
// only if the alarm is active when the bridge reaches it, i.e. after both.
func TestAlarmOffThenOnAppliedInBrokerOrder(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Watchdog.AlarmLatch = false })
	h.ready()
	alarm, reset, notice := h.alarmTopic(), "db/t1/alarm/reset", "db/t1/notice"
	// A refused reset is reported in full (its notice) only rejectBurst
	// times a minute: the rounds stay below that.
	for i := range min(orderRounds, rejectBurst-1) {
		mark := h.c.Mark()
		publishBackToBack(t, h.c, [2]string{alarm, "OFF"}, [2]string{reset, "RESET"})
		h.c.WaitForAfter(mark, notice, wait, payloadIs("reset: nothing was latched"))

		mark = h.c.Mark()
		publishBackToBack(t, h.c, [2]string{alarm, "OFF"}, [2]string{alarm, "ON"}, [2]string{reset, "RESET"})
		m := h.c.WaitForAfter(mark, notice, wait, func(testbroker.Message) bool { return true })
		if !strings.HasPrefix(string(m.Payload), "reset refused: alarm still active") {
			t.Fatalf("round %d: OFF, ON, RESET: the RESET found %q: ON was not applied last", i, m.Payload)
		}
		h.waitPower("0", false, wait, "alarm ON last: the maglock stays released")
	}
}

// A late connection-lost callback (paho calls it after it started the next
// connection) never marks the new connection lost, and a late OnConnect of
// a connection already closed never revives it. Driven by hand, in the
// worst order paho allows.
func TestLateConnectionLostKeepsNewConnection(t *testing.T) {
	l, _ := newTestLoop(t, withoutLatch(), unlinked())
	events := make(chan event, 16)
	link, err := newMQTTLink(l.b.cfg, []string{"tcp://127.0.0.1:1"}, l.b.topics, events, l.b.in, l.log, l.b.m)
	if err != nil {
		t.Fatal(err)
	}
	defer close(link.done)
	l.mq = link
	next := func() event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(wait):
			t.Fatal("no event")
			return nil
		}
	}
	// Each connection goes through the link's dialer to a listener that
	// answers with a CONNACK, which the connection reads: accepted.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	opts, err := mqttclient.Options(l.b.cfg, mqttclient.Settings{Timeout: wait, Track: link.track})
	if err != nil {
		t.Fatal(err)
	}
	u := &url.URL{Scheme: "tcp", Host: ln.Addr().String()}
	conn := func() net.Conn {
		t.Helper()
		c, err := opts.CustomOpenConnectionFn(u, paho.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		broker, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); broker.Close() })
		if _, err := broker.Write([]byte{packets.Connack << 4, 2, 0, packets.Accepted}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
			t.Fatal(err)
		}
		return c
	}

	c1 := conn()
	link.onConnect(nil)
	l.handle(next()) // connection 1 up
	c1.Close()       // paho closes the lost connection first...
	lost1 := next()
	conn()                                    // ...then dials the next one...
	link.onConnect(nil)                       // ...which is up...
	l.handle(next())                          // (the loop hears of it first)
	l.handle(lost1)                           // ...before the loss of connection 1 reaches the loop,
	link.onConnectionLost(nil, net.ErrClosed) // and paho's lost callback runs last.
	for len(events) > 0 {
		l.handle(<-events)
	}
	if !l.connected || l.gen != 2 {
		t.Fatalf("after a late loss of connection 1: connected %v, gen %d; want connection 2 up", l.connected, l.gen)
	}

	// A late OnConnect of connection 2, once it is closed, reports nothing.
	c2 := link.conn.Load()
	c2.Close()
	link.onConnect(nil)
	l.handle(next())
	for len(events) > 0 {
		l.handle(<-events)
	}
	if l.connected {
		t.Fatalf("connection 2 was closed, yet the loop counts it up")
	}
}

// Only a live echo of a probe this process signed proves the link: not a
// retained message on the heartbeat topic, not a forged "<gen> <ns>", not a
// replay of an earlier echo.
func TestHeartbeatOnlyOwnLiveEcho(t *testing.T) {
	l, _ := newTestLoop(t, withoutLatch())
	hb := l.b.topics.Heartbeat
	l.gen, l.hbRecvAt = 1, time.Time{}
	proven := func() bool { return !l.hbRecvAt.IsZero() }
	for _, m := range []evMessage{
		{topic: hb, payload: []byte("1 1800000000000000000"), retained: true},
		{topic: hb, payload: []byte("1 1800000000000000000")},
		{topic: hb, payload: []byte(l.b.hb.probe(1, 5, time.Now().UnixNano())), retained: true},
		{topic: hb, payload: []byte(newHeartbeatKey().probe(1, 5, time.Now().UnixNano()))}, // another process's key
		{topic: hb, payload: []byte(l.b.hb.probe(2, 5, time.Now().UnixNano()))},            // another connection
	} {
		l.onMessage(m)
		if proven() {
			t.Fatalf("heartbeat %q (retained %v) accepted as proof of the link", m.payload, m.retained)
		}
	}
	echo := []byte(l.b.hb.probe(1, 5, time.Now().UnixNano()))
	l.onMessage(evMessage{topic: hb, payload: echo})
	if !proven() {
		t.Fatalf("the bridge's own live echo was not accepted")
	}
	l.hbRecvAt = time.Time{}
	l.onMessage(evMessage{topic: hb, payload: echo})
	if proven() {
		t.Fatalf("a replayed echo was accepted")
	}
	// The router drops the retained and forged ones before they are queued.
	if l.b.in.validEcho(1, []byte("1 1800000000000000000"), false) || l.b.in.validEcho(1, echo, true) {
		t.Fatalf("inbound let a forged or retained heartbeat into the safety queue")
	}
}

// A power source that has not reported yet counts as lost (R24), of every
// type, well before its timeout; an MQTT reading, retained or not, holds
// only for its timeout.
func TestPowerSourceWithoutReadingIsHazard(t *testing.T) {
	l, clk := newTestLoop(t, withoutLatch(), unvalidated(), withConfig(func(c *config.Config) {
		c.Power = []config.PowerSource{
			{Type: config.PowerSysfs, Name: "psu", Path: "/nonexistent", PollInterval: time.Second, Timeout: 10 * time.Second},
			{Type: config.PowerMQTT, Name: "ups", Topic: "ha/ups", PayloadOK: "on", PayloadLost: "off", Timeout: 10 * time.Second},
		}
	}))
	l.alarm("OFF")
	if !l.raw.Has(HazardPower) {
		t.Fatalf("no power hazard with two power sources that never reported: %v", l.raw)
	}
	l.onPower(evPower{source: "psu", lost: false})
	if !l.raw.Has(HazardPower) {
		t.Fatalf("no power hazard while the MQTT source has not reported")
	}
	l.send("ha/ups", "on", true)
	if l.raw.Has(HazardPower) {
		t.Fatalf("power hazard after both sources report mains on")
	}
	clk.t = clk.t.Add(10*time.Second + time.Millisecond)
	l.checkMQTTPower(clk.t)
	if !l.raw.Has(HazardPower) {
		t.Fatalf("a retained 'on' from a silent publisher still trusted after the source's timeout")
	}
	l.send("ha/ups", "on", false)
	if l.raw.Has(HazardPower) {
		t.Fatalf("a fresh reading did not clear the stale source")
	}
}

// End to end: a sysfs power source whose file does not exist yet keeps the
// power hazard from the start, although its timeout (10 s, the most allowed) is far away.
func TestPowerSourceWithoutReadingReleasesAtOnce(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *config.Config) {
		c.Power = []config.PowerSource{{Type: config.PowerSysfs, Name: "psu", Path: dir,
			PollInterval: 50 * time.Millisecond, Timeout: 10 * time.Second}}
	})
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitHazard("power")
	h.c.WaitPayload("db/t1/power/state", "OFF", wait)
	if h.power("0") {
		t.Fatalf("maglock powered while its power source never reported")
	}
	os.WriteFile(filepath.Join(dir, "online"), []byte("1\n"), 0o644)
	h.waitPower("0", true, wait, "the first reading of mains on relocks")
}

// Oversized messages never reach a queue as they are: dropped on a command
// or discovery topic, junk (so alarm) on an alarm topic. Full queues drop
// and count; a safety message that cannot be queued drops its connection.
func TestInboundBoundsAndSizes(t *testing.T) {
	l, _ := newTestLoop(t, withoutLatch())
	in := l.b.in
	var dropped []uint64
	in.overflow = func(gen uint64) { dropped = append(dropped, gen) }
	big := make([]byte, maxInbound+1)
	count := func(reason, queue string) int {
		return int(testutil.ToFloat64(l.b.m.mqttDropped.WithLabelValues(reason, queue)))
	}

	in.deliver(1, "db/t1/fsec/set", big, false)
	in.deliver(1, "homeassistant/device/x/config", big, true)
	if len(in.other) != 0 || count(dropOversized, queueOther) != 2 {
		t.Fatalf("oversized command/discovery: %d queued, %d counted", len(in.other), count(dropOversized, queueOther))
	}
	l.alarm("OFF")
	in.deliver(l.gen, l.b.cfg.Alarms[0].Topic, big, false)
	e := <-in.safety
	if len(e.payload) > 64 {
		t.Fatalf("an oversized alarm message was queued with its payload (%d bytes)", len(e.payload))
	}
	l.onQueued(e)
	if !l.raw.Has(HazardAlarm) {
		t.Fatalf("an oversized alarm message did not count as a junk value (alarm)")
	}

	for range otherQueueLen + 5 {
		in.deliver(1, "db/t1/fsec/set", []byte("LOCK"), false)
	}
	if len(in.other) != otherQueueLen || count(dropQueueFull, queueOther) != 5 {
		t.Fatalf("other queue: %d queued, %d dropped; want %d and 5", len(in.other), count(dropQueueFull, queueOther), otherQueueLen)
	}
	for len(in.other) > 0 {
		l.onQueued(<-in.other)
	}
	// In bytes too: 4 MiB of 60 KiB messages is 68 of them.
	chunk := make([]byte, 60<<10)
	for range 100 {
		in.deliver(1, "homeassistant/device/x/config", chunk, true)
	}
	if n := len(in.other); n < 60 || n > 70 {
		t.Fatalf("%d messages of 60 KiB queued; want the queue bounded near %d bytes", n, queueBytes)
	}
	for len(in.other) > 0 {
		l.onQueued(<-in.other)
	}
	if in.used[1].Load() != 0 {
		t.Fatalf("%d bytes still counted in an empty queue", in.used[1].Load())
	}
	for range safetyQueueLen + 1 {
		in.deliver(7, l.b.cfg.Alarms[0].Topic, []byte("OFF"), false)
	}
	if len(dropped) != 1 || dropped[0] != 7 || count(dropQueueFull, queueSafety) != 1 {
		t.Fatalf("a full safety queue dropped connections %v (counted %d); want [7]", dropped, count(dropQueueFull, queueSafety))
	}
}

// Once the retained discovery configs are in (the first heartbeat echo),
// the bridge leaves the discovery wildcard: junk published there later
// never reaches it.
func TestDiscoveryWildcardLeftAfterSync(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	big := strings.Repeat("x", maxInbound+1)
	oversized := func(queue string) float64 {
		return testutil.ToFloat64(h.b.m.mqttDropped.WithLabelValues(dropOversized, queue))
	}
	testbroker.Eventually(t, wait, func() bool {
		// Both from one client, in this order: the second (a safety topic)
		// is delivered after the first would have been.
		other, safety := oversized(queueOther), oversized(queueSafety)
		h.c.Publish("homeassistant/device/x/config", big, false)
		h.c.Publish("db/t1/alarm/reset", big, false)
		testbroker.Eventually(t, wait, func() bool { return oversized(queueSafety) > safety }, "the big reset is counted")
		return oversized(queueOther) == other
	}, "a message on the discovery wildcard still reaches the bridge after sync")
}

// What must come before the first heartbeat echo (alarm values, their
// heartbeats and availability, power, the latch, the drill date) shares
// the echo's queue: broker order then puts it first by construction.
func TestSafetyTopicsShareTheEchoQueue(t *testing.T) {
	l, _ := newTestLoop(t, withoutLatch(), unvalidated(), withConfig(func(c *config.Config) {
		c.Alarms[0].HeartbeatTopic = "ha/alarm/alive"
		c.Alarms = append(c.Alarms, config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", PayloadOn: "true", PayloadOff: "false",
			AvailabilityTopic: "zigbee2mqtt/+/availability"})
		c.Power = []config.PowerSource{{Type: config.PowerMQTT, Name: "ups", Topic: "ha/ups", PayloadOK: "on", PayloadLost: "off", Timeout: time.Second}}
	}))
	safety, cmd := l.b.in.isSafety, l.b.in.isCmd
	tp := l.b.topics
	for _, topic := range []string{tp.Heartbeat, tp.AlarmLatched, tp.DrillLast, tp.AlarmReset, tp.HAStatus,
		l.b.cfg.Alarms[0].Topic, "ha/alarm/alive", "zigbee2mqtt/kitchen", "zigbee2mqtt/kitchen/availability", "ha/ups"} {
		if !safety(topic) {
			t.Errorf("%s is not in the safety queue", topic)
		}
	}
	for _, topic := range []string{"db/t1/fs/set", "db/t1/nosuchdoor/set", tp.LockdownSet, tp.Republish, "homeassistant/device/x/config"} {
		if safety(topic) {
			t.Errorf("%s is in the safety queue", topic)
		}
	}
	if !cmd("db/t1/fs/set") || !cmd(tp.LockdownSet) || cmd(tp.Republish) {
		t.Errorf("command topics misclassified")
	}
}

// The loop serves the safety queue first: an alarm queued behind hundreds
// of commands acts before any of them.
func TestSafetyQueueServedFirst(t *testing.T) {
	l, clk := newTestLoop(t, withoutLatch())
	l.alarm("OFF")
	l.settle(clk)
	var mu sync.Mutex
	var order []string
	l.b.audit.sink = func(e auditEvent) {
		mu.Lock()
		order = append(order, e.Kind+":"+e.Outcome+":"+e.Hazard)
		mu.Unlock()
	}
	for range 500 {
		l.b.in.other <- evMessage{topic: "db/t1/fsec/set", payload: []byte("LOCK")}
	}
	l.b.in.safety <- evMessage{topic: l.b.cfg.Alarms[0].Topic, payload: []byte("ON"), retained: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx)
	}()
	testbroker.Eventually(t, wait, func() bool { return len(l.b.in.other) == 0 && len(l.b.in.safety) == 0 }, "queues drained")
	// The loop records after the relay writes it asked for are done (they
	// run off the loop): wait for both records, not just for the queues.
	testbroker.Eventually(t, wait, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(order, "hazard:raised:alarm") && slices.Contains(order, "command:accepted:")
	}, "the alarm and a command recorded")
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	alarm, firstCmd := slices.Index(order, "hazard:raised:alarm"), slices.Index(order, "command:accepted:")
	if alarm < 0 || firstCmd < 0 || alarm > firstCmd {
		t.Fatalf("alarm raised at audit event %d, first command accepted at %d: the alarm waited behind commands", alarm, firstCmd)
	}
}

// A command overtaken by a safety message while a hazard held is judged
// under that hazard: UNLOCK of a strike sent during an alarm stays refused
// even when the alarm's OFF, sent after it, was handled first (here with
// relock_delay 0, so nothing else holds the hazard).
func TestOvertakenCommandJudgedUnderHazard(t *testing.T) {
	l, _ := newTestLoop(t, withoutLatch(), withConfig(func(c *config.Config) { c.Watchdog.RelockDelay = 0 }))
	alarm := l.b.cfg.Alarms[0].Topic
	l.alarm("ON")
	in := l.b.in
	in.deliver(l.gen, "db/t1/fsec/set", []byte("UNLOCK"), false) // sent during the alarm
	in.deliver(l.gen, alarm, []byte("OFF"), true)                // then the alarm ends
	off, cmd := <-in.safety, <-in.other
	l.onQueued(off) // the safety queue first
	l.onQueued(cmd)
	if l.effective.Any() {
		t.Fatalf("hazards after the alarm ended: %v", l.effective)
	}
	if fsec := l.b.byID["fsec"]; fsec.power || fsec.command == CommandUnlock {
		t.Fatalf("an UNLOCK sent during the alarm was applied after it (power %v)", fsec.power)
	}
	// In broker order from here on, a new UNLOCK works.
	in.deliver(l.gen, "db/t1/fsec/set", []byte("UNLOCK"), false)
	l.onQueued(<-in.other)
	if l.b.byID["fsec"].command != CommandUnlock {
		t.Fatalf("an UNLOCK sent after the alarm was refused")
	}
}
