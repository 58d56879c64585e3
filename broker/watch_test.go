package broker

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/internal/testbroker"
	"github.com/doorbridge/doorbridge/mqttclient"
)

// The flow control holds every publisher for the client it watches as the
// bridge. It watched any connection of the bridge's user: one that stopped
// reading (or declared a tiny maximum packet size) held Home Assistant's
// alarm up to 5 s a message and timed out the bridge's heartbeat (review 12,
// attacker 2). Only the bridge's own in-process connection is watched.
func TestFlowWatchesOnlyTheBridgesOwnConnection(t *testing.T) {
	cfg, listen, eb := guestBroker(t)
	bridgeUser := testbroker.ClientOptions{Username: "doorbridge", Password: "bridge-secret-1"}
	// Over TCP, with the bridge's password: as the CLI, and with the
	// bridge's own client id.
	for _, id := range []string{"doorbridge-cli-1", cfg.ClientID()} {
		conn, code, err := testbroker.RawConnect(listen, id, bridgeUser, nil)
		if err != nil || code != 0 {
			t.Fatalf("%s over TCP: code %d, %v", id, code, err)
		}
		cl, ok := eb.srv.Clients.Get(id)
		if !ok {
			t.Fatalf("%s: not among the broker's clients", id)
		}
		if eb.flow.flow.Watch(cl) {
			t.Errorf("%s over TCP as the bridge's user is watched as the bridge", id)
		}
		conn.Close()
		testbroker.Eventually(t, wait, func() bool { c, ok := eb.srv.Clients.Get(id); return !ok || c.Closed() }, "%s gone", id)
	}
	// The bridge itself, in-process.
	opts, err := mqttclient.Options(cfg, mqttclient.Settings{URLs: []string{eb.BridgeURL()}, Username: "doorbridge", Password: "bridge-secret-1", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(opts.SetClientID(cfg.ClientID()).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("the bridge in-process: %v", tok.Error())
	}
	defer c.Disconnect(0)
	watched := func() bool {
		got, ok := eb.srv.Clients.Get(cfg.ClientID())
		return ok && !got.Closed() && eb.flow.flow.Watch(got)
	}
	testbroker.Eventually(t, wait, watched, "the bridge's in-process connection watched")
}
