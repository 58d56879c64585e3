package bridge

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// floodBroker is a bridge on its embedded broker with users: Home
// Assistant and the CLI may command doors, the watcher reads everything.
func floodBroker(t *testing.T) (*linked, string) {
	t.Helper()
	cfg := testConfig("")
	// The shipped timings: the test is about junk, not about a loaded CI
	// machine (as TestFloodDoesNotDelayAlarm). Under the race detector
	// (about ten times slower) on a loaded 2-core machine the heartbeat
	// echo, like the alarm, took seconds behind the bridge's full queue in
	// the broker (128 messages): the timeout is 10 s there. A heartbeat
	// starved behind junk waits as long as the flood runs, and still
	// raises the hazard.
	hbTimeout := 3 * time.Second
	if simRaceScale > 1 {
		hbTimeout = 10 * time.Second
	}
	cfg.Watchdog.HeartbeatInterval, cfg.Watchdog.HeartbeatTimeout = time.Second, hbTimeout
	listen := testbroker.FreeAddr(t)
	cfg.MQTT.Username, cfg.MQTT.Password = "doorbridge", "bridge-secret-1"
	cfg.EmbeddedBroker = config.EmbeddedBroker{
		Listen: listen,
		Users: []config.BrokerUser{
			{Username: "doorbridge", PasswordHash: bcryptHash(t, "bridge-secret-1")},
			{Username: "homeassistant", PasswordHash: bcryptHash(t, "ha-secret-2")},
			{Username: "doorbridge-cli", PasswordHash: bcryptHash(t, "cli-secret-3")},
			{Username: "watcher", PasswordHash: bcryptHash(t, "watch-secret-4")},
		},
		ACL: []config.BrokerACL{
			// The test client subscribes to "#": with db/# Home Assistant's
			// connection drinks the whole flood, which keeps the bridge's
			// queue in the broker full (the pressure the test is about) and
			// holds its PUBACKs behind seconds of junk in its socket (so the
			// test waits for the door, not for them: haSend).
			{Username: "homeassistant", Publish: []string{"db/+/+/set", "db/+/alarm/reset", "db/alarm", "homeassistant/#"}, Subscribe: []string{"db/#"}},
			{Username: "doorbridge-cli", Publish: []string{"db/+/+/set"}, Subscribe: []string{"db/#"}},
			{Username: "watcher", Publish: []string{"testbroker/#"}, Subscribe: []string{"#"}},
		},
	}
	l := runLinked(t, cfg)
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect("tcp://"+listen, "probe", testbroker.ClientOptions{Username: "watcher", Password: floodLogins["watcher"]}) == nil
	}, "embedded broker listening on %s", listen)
	return l, listen
}

var floodLogins = map[string]string{"homeassistant": "ha-secret-2", "doorbridge-cli": "cli-secret-3", "watcher": "watch-secret-4"}

// loginFlooder writes junk commands at QoS 0 as fast as its socket takes
// them, logged in as user: unknown doors, junk for a real door, junk
// lockdown; with safety, also junk on Home Assistant's status, a safety
// topic (the bridge's HA birth topic).
func loginFlooder(t *testing.T, addr, user, id string, safety bool) *flooder {
	t.Helper()
	conn, code, err := testbroker.RawConnect(addr, id, testbroker.ClientOptions{Username: user, Password: floodLogins[user]}, nil)
	if err != nil || code != 0 {
		t.Fatalf("flooder %s as %s: code %d, %v", id, user, code, err)
	}
	var b bytes.Buffer
	for i := range 64 {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		switch i % 4 {
		case 0:
			p.TopicName, p.Payload = fmt.Sprintf("db/t1/junk-%d/set", i), []byte("UNLOCK")
			if safety {
				p.TopicName, p.Payload = "homeassistant/status", []byte("junk")
			}
		case 1:
			p.TopicName, p.Payload = fmt.Sprintf("db/t1/junk-%d/set", i), []byte("UNLOCK")
		case 2:
			p.TopicName, p.Payload = "db/t1/fsec/set", []byte("JUNK")
		default:
			p.TopicName, p.Payload = "db/t1/lockdown/set", []byte("JUNK")
		}
		p.Write(&b)
	}
	batch := b.Bytes()
	f := &flooder{conn: conn, stop: make(chan struct{})}
	f.done.Add(2)
	go func() {
		defer f.done.Done()
		_, _ = bufio.NewReader(conn).WriteTo(devNull{})
	}()
	go func() {
		defer f.done.Done()
		for {
			select {
			case <-f.stop:
				return
			default:
			}
			if _, err := conn.Write(batch); err != nil {
				return
			}
			f.sent.Add(64)
		}
	}()
	t.Cleanup(f.close)
	return f
}

// floodRounds: how many alarms the test sends during the flood, and how
// long the flood runs alone first (DOORBRIDGE_HOSTILE=full: longer).
func floodRounds() (rounds int, alone time.Duration) {
	if os.Getenv("DOORBRIDGE_HOSTILE") == "full" {
		return 20, 10 * time.Second
	}
	return 3, time.Second
}

// floodBudget bounds each wait for an outcome during a flood: the door,
// not the PUBACK, is what the test is about.
const floodBudget = 30 * time.Second

// haSend publishes as Home Assistant at QoS 1 without waiting for the
// broker's PUBACK (the test waits for the door instead), and keeps the
// token for haAcked. paho sends in order on one connection, so an OFF then
// a RESET arrive in that order.
func haSend(ha *testbroker.Client, sent *[]paho.Token, topic, payload string, retained bool) {
	*sent = append(*sent, ha.Paho().Publish(topic, 1, retained, payload))
}

// haAcked checks that the broker acknowledged every publication haSend
// made, once the flood is over.
func haAcked(t *testing.T, sent []paho.Token) {
	t.Helper()
	for i, tok := range sent {
		if !tok.WaitTimeout(floodBudget) {
			t.Errorf("Home Assistant's publication %d: no PUBACK within %v after the flood", i+1, floodBudget)
		} else if err := tok.Error(); err != nil {
			t.Errorf("Home Assistant's publication %d: %v", i+1, err)
		}
	}
}

// Issue 12 item 5 on the embedded broker: a flood of junk commands from
// several connections of one user and of another user, at full rate, on
// topics the bridge subscribes to. The broker queues at most
// maxWritesPending messages for the bridge; on main it dropped what did
// not fit, alarms and heartbeat echoes included. Now the flooders are held
// back (their sockets stop being read) and junk commands are shed before
// they can take the room kept for safety messages: the junk alone raises
// no hazard and moves no door, and every alarm sent during the flood
// releases the fail-safe door.
func TestEmbeddedBrokerFloodKeepsAlarms(t *testing.T) {
	l, listen := floodBroker(t)
	plain := "tcp://" + listen
	ha := testbroker.ConnectWith(t, plain, "ha", testbroker.ClientOptions{Username: "homeassistant", Password: floodLogins["homeassistant"]})
	ha.Publish("db/alarm", "OFF", true)
	l.waitPower("0", true, wait, "the fail-safe door locks once the alarm is clear")
	testbroker.Eventually(t, wait, l.connected, "link proven")

	trips := func(h Hazard) float64 { return testutil.ToFloat64(l.b.m.hazardsRaised.WithLabelValues(h.String())) }
	brokerTrips, alarmTrips := trips(HazardBroker), trips(HazardAlarm)
	var flooders []*flooder
	for i, user := range []string{"homeassistant", "homeassistant", "homeassistant", "doorbridge-cli", "doorbridge-cli"} {
		flooders = append(flooders, loginFlooder(t, listen, user, fmt.Sprintf("flood-%d", i), i == 0))
	}
	sent := func() (n int64) {
		for _, f := range flooders {
			n += f.sent.Load()
		}
		return n
	}
	rounds, alone := floodRounds()

	// The junk alone: no hazard, no door moves.
	start := time.Now()
	for time.Since(start) < alone {
		if !l.power("0") || l.power("1") {
			t.Fatalf("the junk flood moved a door: power %v", l.sim.Levels())
		}
		time.Sleep(10 * time.Millisecond) // sampling the relays, not waiting for an outcome
	}
	if n := trips(HazardBroker) - brokerTrips; n != 0 {
		t.Errorf("the junk flood raised the broker hazard %v times", n)
	}
	if n := trips(HazardAlarm) - alarmTrips; n != 0 {
		t.Errorf("the junk flood raised the alarm hazard %v times", n)
	}
	t.Logf("%d junk messages written in %v", sent(), alone)

	// Every alarm during the flood releases the fail-safe door. The flood
	// runs all along: an alarm starved behind junk would wait as long as
	// the flood, or be held safetyWait and cut the bridge's connection
	// (the broker hazard and the safety shed, both checked below). The
	// wait's budget is not R3's 1 s (doorbench measures that): it only
	// bounds a -race build on a loaded shared machine, where the release
	// took up to 3.5 s with the flood and 13 runnable processes on 2 cores.
	var haSent []paho.Token
	for i := range rounds {
		sentAt := time.Now()
		haSend(ha, &haSent, "db/alarm", "ON", true)
		l.waitPower("0", false, floodBudget, fmt.Sprintf("alarm %d of %d during the flood releases the fail-safe door", i+1, rounds))
		t.Logf("alarm %d released the door %v after it was sent (-race, this machine's load: not R3's figure)", i+1, time.Since(sentAt).Round(time.Millisecond))
		haSend(ha, &haSent, "db/alarm", "OFF", true)
		haSend(ha, &haSent, "db/t1/alarm/reset", "RESET", false)
		l.waitPower("0", true, floodBudget, fmt.Sprintf("alarm %d cleared and reset during the flood", i+1))
	}
	if n := trips(HazardAlarm) - alarmTrips; n != float64(rounds) {
		t.Errorf("the alarm hazard was raised %v times for %d alarms", n, rounds)
	}
	if n := trips(HazardBroker) - brokerTrips; n != 0 {
		t.Errorf("the flood raised the broker hazard %v times", n)
	}
	if l.power("1") {
		t.Error("the junk flood unlocked the strike")
	}
	total := sent()
	for _, f := range flooders {
		f.close()
	}
	haAcked(t, haSent)
	if n := l.log.count("dropped a message for the bridge"); n > 0 {
		t.Errorf("the broker dropped messages for the bridge (%d log lines)", n)
	}
	// The flooders were held back, not the bridge.
	delayed, shed := l.b.m.brokerDelayed.WithLabelValues(queueOther), l.b.m.brokerShed.WithLabelValues(queueOther)
	if testutil.ToFloat64(delayed) == 0 {
		t.Error("no junk command was held back: the flood did not fill the bridge's queue in the broker")
	}
	if n := testutil.ToFloat64(l.b.m.brokerShed.WithLabelValues(queueSafety)); n > 0 {
		t.Errorf("%v safety messages could not be queued for the bridge", n)
	}
	t.Logf("%d junk messages written in all; the broker held back %v of them and shed %v; the bridge rejected %.0f commands to unknown doors; dropped before the loop: %s",
		total, testutil.ToFloat64(delayed), testutil.ToFloat64(shed),
		testutil.ToFloat64(l.b.m.commandsRejected.WithLabelValues(unknownDoorLabel, rejectUnknownDoor)), dropped(l.b))
}

// Home Assistant sends its commands and the alarm on one connection (review
// 12 major 3): during a flood by the CLI user, each of its commands was
// held in its read goroutine for a bulk wait, and its alarm waited in its
// socket behind them (20 commands: 1.85 s; 30 and more: past the heartbeat
// timeout). A user whose acl lets it publish a safety topic has its
// commands go ahead of every other publisher's (mochifix.Flow.NoWait;
// TestFlowNoWaitPublisherGoesFirst pins the mechanism, and broker's
// TestEmbeddedBrokerSafetyPublisherGoesAhead who goes ahead), the CLI
// user's do not.
func TestEmbeddedBrokerHAAlarmNotBehindItsCommands(t *testing.T) {
	l, listen := floodBroker(t)
	ha := testbroker.ConnectWith(t, "tcp://"+listen, "ha", testbroker.ClientOptions{Username: "homeassistant", Password: floodLogins["homeassistant"]})
	ha.Publish("db/alarm", "OFF", true)
	l.waitPower("0", true, wait, "locked")
	testbroker.Eventually(t, wait, l.connected, "link proven")
	for i := range 5 {
		loginFlooder(t, listen, "doorbridge-cli", fmt.Sprintf("flood-%d", i), false)
	}
	delayed := l.b.m.brokerDelayed.WithLabelValues(queueOther)
	testbroker.Eventually(t, wait, func() bool { return testutil.ToFloat64(delayed) > 0 }, "the CLI flood held back")

	conn, code, err := testbroker.RawConnect(listen, "ha-auto", testbroker.ClientOptions{Username: "homeassistant", Password: floodLogins["homeassistant"]}, nil)
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	defer conn.Close()
	go func() { _, _ = bufio.NewReader(conn).WriteTo(devNull{}) }()
	var b bytes.Buffer
	for i := range 40 {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Payload = fmt.Sprintf("db/t1/ha-%d/set", i), []byte("LOCK")
		p.Write(&b)
	}
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Payload, p.Retain = "db/alarm", []byte("ON"), true
	p.Write(&b)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	l.waitPower("0", false, 10*time.Second, "Home Assistant's alarm after its 40 commands releases the door during the flood")
	if n := testutil.ToFloat64(l.b.m.hazardsRaised.WithLabelValues(HazardBroker.String())); n != 0 {
		t.Errorf("the broker hazard was raised %v times", n)
	}
}

// Home Assistant's commands during a junk flood by another user while the
// bridge publishes (its state after each command, its heartbeat, a
// republish burst every 20 ms): mochifix.Flow shed every message for the
// bridge that did not fit while the bridge's own PUBLISH was processed,
// Home Assistant's commands too, at once: up to 29% of them were lost
// (706 to 995 of 1000 reached the bridge in 5 runs). Now only the bridge's own publication counts as
// its own there (TestFlowOthersNotShedWhileClientPublishes pins it); this
// measures it end to end. Timing-dependent (a command still waits at most
// bulkWait for room): DOORBRIDGE_HOSTILE=full only.
func TestEmbeddedBrokerHACommandsNotShedDuringFlood(t *testing.T) {
	if os.Getenv("DOORBRIDGE_HOSTILE") != "full" {
		t.Skip("DOORBRIDGE_HOSTILE=full runs it")
	}
	l, listen := floodBroker(t)
	ha := testbroker.ConnectWith(t, "tcp://"+listen, "ha", testbroker.ClientOptions{Username: "homeassistant", Password: floodLogins["homeassistant"]})
	ha.Publish("db/alarm", "OFF", true)
	l.waitPower("0", true, wait, "locked")
	testbroker.Eventually(t, wait, l.connected, "link proven")
	for i := range 3 {
		loginFlooder(t, listen, "doorbridge-cli", fmt.Sprintf("flood-%d", i), false)
	}
	conn, code, err := testbroker.RawConnect(listen, "ha-auto", testbroker.ClientOptions{Username: "homeassistant", Password: floodLogins["homeassistant"]}, nil)
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	defer conn.Close()
	go func() { _, _ = bufio.NewReader(conn).WriteTo(devNull{}) }()
	accepted := l.b.m.commands.WithLabelValues("fsec", "accepted")
	before := testutil.ToFloat64(accepted)
	const rounds, perRound = 50, 20
	for range rounds {
		var b bytes.Buffer
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Payload = "db/t1/republish", []byte("PRESS")
		p.Write(&b)
		for range perRound {
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.TopicName, p.Payload = "db/t1/fsec/set", []byte("LOCK")
			p.Write(&b)
		}
		if _, err := conn.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the pace of the commands, not a wait for an outcome
	}
	sent := float64(rounds * perRound)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && testutil.ToFloat64(accepted)-before < sent {
		time.Sleep(50 * time.Millisecond)
	}
	got := testutil.ToFloat64(accepted) - before
	t.Logf("%.0f of %.0f Home Assistant commands reached the bridge during the flood; the broker shed %v messages for it",
		got, sent, testutil.ToFloat64(l.b.m.brokerShed.WithLabelValues(queueOther)))
	if got < sent {
		t.Errorf("%.0f of %.0f Home Assistant commands lost during the flood", sent-got, sent)
	}
}
