package broker

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

func TestTopicsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"db/t1/+/set", "db/t1/front/set", true},
		{"db/t1/+/set", "db/t1/front/state", false},
		{"db/#", "db", true},
		{"db/#", "db/t1/front/set", true},
		{"db/+", "db/t1/front", false},
		{"#", "anything/at/all", true},
		{"db/t1/+/state", "db/+/front/#", true},
		{"db/t1/+/state", "db/t2/#", false},
		{"db/t1/alarm/reset", "db/t1/alarm/reset", true},
		{"db/t1/alarm", "db/t1/alarm/reset", false},
		{"db/t1/alarm/reset", "db/t1/alarm", false},
	} {
		if got := TopicsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("TopicsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := TopicsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("TopicsOverlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

// The bridge's password must be its user's in embedded_broker.users, or the
// embedded broker does not start: the bridge could never log in.
func TestEmbeddedBrokerRefusesWrongBridgePassword(t *testing.T) {
	cfg := testConfig()
	cfg.MQTT.Username, cfg.MQTT.Password = "doorbridge", "not-it"
	cfg.EmbeddedBroker = config.EmbeddedBroker{Listen: "127.0.0.1:0", Users: []config.BrokerUser{
		{Username: "doorbridge", PasswordHash: bcryptHash(t, "the-password")},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := Start(cfg, testLogger(t))
	want := `mqtt.username "doorbridge": the password in mqtt.password(_file) is not that user's password in embedded_broker.users`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Start = %v, want an error containing %q", err, want)
	}
}

// One user may hold at most maxConnsPerUser connections: its logins cannot
// fill the broker's client limit and lock the bridge out when it
// reconnects. A connection that ends gives its place back.
func TestEmbeddedBrokerLimitsConnectionsPerUser(t *testing.T) {
	cfg, listen, eb := guestBroker(t)
	guest := testbroker.ClientOptions{Username: "guest", Password: "guest-secret-3"}
	var held []net.Conn
	for i := range maxConnsPerUser {
		conn, code, err := testbroker.RawConnect(listen, fmt.Sprintf("guest-%d", i), guest, nil)
		if err != nil || code != 0 {
			t.Fatalf("guest connection %d: code %d, %v", i, code, err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	if conn, code, err := testbroker.RawConnect(listen, "guest-extra", guest, nil); err == nil {
		conn.Close()
		if code == 0 {
			t.Errorf("guest connection %d let in, want refused beyond %d", maxConnsPerUser+1, maxConnsPerUser)
		}
	}
	// The bridge's own user is not limited by the guest's connections.
	if err := testbroker.TryConnect("tcp://"+eb.Addr(), cfg.ClientID(), testbroker.ClientOptions{Username: "doorbridge", Password: "bridge-secret-1"}); err != nil {
		t.Errorf("the bridge's user refused while a guest holds %d connections: %v", maxConnsPerUser, err)
	}
	held[0].Close()
	testbroker.Eventually(t, wait, func() bool {
		conn, code, err := testbroker.RawConnect(listen, "guest-again", guest, nil)
		if err == nil {
			defer conn.Close()
		}
		return err == nil && code == 0
	}, "a guest connection let in once another ended")
}

// guestBroker starts an embedded broker with the bridge's user and a
// "guest" who may publish and subscribe under guest/#, on a free port.
func guestBroker(t *testing.T) (cfg *config.Config, listen string, eb *Broker) {
	t.Helper()
	eb, cfg, listen = startWithUsers(t, [][2]string{{"guest", "guest-secret-3"}},
		[]config.BrokerACL{{Username: "guest", Publish: []string{"guest/#"}, Subscribe: []string{"guest/#"}}})
	return cfg, listen, eb
}
