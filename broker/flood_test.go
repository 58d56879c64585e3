package broker

import (
	"bufio"
	"io"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// floodBroker is an embedded broker with users, as the bridge's flood
// tests run it (bridge/embedded_flood_test.go): Home Assistant and the
// CLI may command doors, the watcher reads everything.
func floodBroker(t *testing.T) (*Broker, string) {
	t.Helper()
	eb, _, listen := startWithUsers(t, [][2]string{{"homeassistant", "ha-secret-2"}, {"doorbridge-cli", "cli-secret-3"}, {"watcher", "watch-secret-4"}}, []config.BrokerACL{
		{Username: "homeassistant", Publish: []string{"db/+/+/set", "db/+/alarm/reset", "db/alarm", "homeassistant/#"}, Subscribe: []string{"db/#"}},
		{Username: "doorbridge-cli", Publish: []string{"db/+/+/set"}, Subscribe: []string{"db/#"}},
		{Username: "watcher", Publish: []string{"testbroker/#"}, Subscribe: []string{"#"}},
	})
	return eb, listen
}

var floodLogins = map[string]string{"homeassistant": "ha-secret-2", "doorbridge-cli": "cli-secret-3", "watcher": "watch-secret-4"}

// setTestBridge tells eb the bridge's safety topics as testConfig's bridge
// has them (bridge.loop.safetyFilters): its heartbeat, reset, latch and
// last drill, Home Assistant's status, the alarm.
func setTestBridge(eb *Broker) {
	filters := []string{"db/t1/heartbeat", "db/t1/alarm/reset", "db/t1/alarm/latched", "db/t1/drill/last", "homeassistant/status", "db/alarm"}
	isSafety := func(topic string) bool {
		for _, f := range filters {
			if TopicsOverlap(f, topic) {
				return true
			}
		}
		return false
	}
	eb.SetBridge(isSafety, filters, nil)
}

// connected logs id in as user (its sent messages read and thrown away)
// and returns the broker's client.
func connected(t *testing.T, eb *Broker, listen, user, id string) *mochi.Client {
	t.Helper()
	conn, code, err := testbroker.RawConnect(listen, id, testbroker.ClientOptions{Username: user, Password: floodLogins[user]}, nil)
	if err != nil || code != 0 {
		t.Fatalf("%s as %q: code %d, %v", id, user, code, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() { _, _ = bufio.NewReader(conn).WriteTo(io.Discard) }()
	var cl *mochi.Client
	testbroker.Eventually(t, wait, func() bool {
		var ok bool
		cl, ok = eb.srv.Clients.Get(id)
		return ok
	}, "%s connected", id)
	return cl
}

// Home Assistant sends its commands and the alarm on one connection (review
// 12 major 3): a user whose acl lets it publish a safety topic has its
// commands go ahead of every other publisher's (mochifix.Flow.NoWait), the
// CLI user's do not. bridge's TestEmbeddedBrokerHAAlarmNotBehindItsCommands
// shows Home Assistant's alarm released the door during a flood.
func TestEmbeddedBrokerSafetyPublisherGoesAhead(t *testing.T) {
	eb, listen := floodBroker(t)
	setTestBridge(eb)
	for id, c := range map[string]struct {
		user string
		want bool
	}{"ha-auto": {"homeassistant", true}, "flood-0": {"doorbridge-cli", false}} {
		cl := connected(t, eb, listen, c.user, id)
		if got := eb.flow.noWait(cl); got != c.want {
			t.Errorf("%s (%s): never held %v, want %v", id, cl.Properties.Username, got, c.want)
		}
	}
}

// On an embedded broker without users every client may publish a safety
// topic: had every one gone ahead (Flow.NoWait), a junk flood's commands
// were ahead of Home Assistant's too, and its alarm waited behind its own
// commands again (re-review of issue 12 item 5, M3). Without users, no
// publisher goes ahead.
func TestEmbeddedBrokerWithoutUsersNoOneGoesAhead(t *testing.T) {
	cfg := testConfig()
	listen := testbroker.FreeAddr(t)
	cfg.EmbeddedBroker = config.EmbeddedBroker{Listen: listen}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	eb, err := Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eb.Close() })
	setTestBridge(eb)
	cl := connected(t, eb, listen, "", "flood-0")
	if eb.flow.noWait(cl) {
		t.Error("a flooder on a broker without users goes ahead of every other publisher")
	}
}
