package broker

import (
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// The embedded broker never stores a retained command, lockdown or
// republish message (issue 12 item 5, review 12 critical 1b): a user
// allowed to command planted 1,000 retained junk commands, which every
// SUBSCRIBE of the bridge got again, ahead of its safety values. Another
// bridge's command topic is stored as before.
func TestEmbeddedBrokerKeepsNoRetainedCommands(t *testing.T) {
	eb, listen := floodBroker(t)
	cli := testbroker.ConnectWith(t, "tcp://"+listen, "cli", testbroker.ClientOptions{Username: "doorbridge-cli", Password: floodLogins["doorbridge-cli"]})
	// (Not db/t1/republish: the CLI user may not publish there at all, and
	// a forbidden QoS 1 publish costs the connection, so the marker after
	// it could be sent while the client reconnects.)
	for _, topic := range []string{"db/t1/r0001/set", "db/t1/lockdown/set", "db/t2/marker/set"} {
		cli.Publish(topic, "junk", true)
	}
	// One connection: the marker, last, is stored once the others were seen.
	testbroker.Eventually(t, wait, func() bool { return len(eb.srv.Topics.Messages("db/t2/marker/set")) == 1 }, "the marker retained")
	for _, topic := range []string{"db/t1/r0001/set", "db/t1/lockdown/set"} {
		if got := eb.srv.Topics.Messages(topic); len(got) != 0 {
			t.Errorf("%s retained", topic)
		}
	}
}
