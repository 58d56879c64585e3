package bridge

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

func limitsBroker(t *testing.T) (*EmbeddedBroker, *config.Config, string) {
	t.Helper()
	cfg := testConfig("")
	listen := testbroker.FreeAddr(t)
	cfg.MQTT.Username, cfg.MQTT.Password = "doorbridge", "bridge-secret-1"
	cfg.EmbeddedBroker = config.EmbeddedBroker{
		Listen: listen,
		Users: []config.BrokerUser{
			{Username: "doorbridge", PasswordHash: bcryptHash(t, "bridge-secret-1")},
			{Username: "guest", PasswordHash: bcryptHash(t, "guest-secret-3")},
			{Username: "homeassistant", PasswordHash: bcryptHash(t, "ha-secret-2")},
		},
		ACL: []config.BrokerACL{
			{Username: "guest", Publish: []string{"guest/#"}, Subscribe: []string{"guest/#"}},
			{Username: "homeassistant", Publish: []string{"homeassistant/#"}, Subscribe: []string{"#"}},
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	eb, err := StartEmbeddedBrokerConfig(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eb.Close() })
	return eb, cfg, listen
}

// ATTACK (a broker user with few rights): the per-user limit is checked in
// OnConnectAuthenticate but counted only in OnSessionEstablished, after
// the session hook and the CONNACK: CONNECTs sent at once all pass the
// check before any is counted.
func TestAttackPerUserLimitRace(t *testing.T) {
	attackProbe(t)
	// The race is a matter of scheduling: up to 10 bursts, each on a fresh
	// broker (cold password cache), bounded to 48 connections.
	for burst := range 10 {
		if n := perUserBurst(t); n > maxConnsPerUser {
			t.Fatalf("burst %d: one user holds %d connections, beyond maxConnsPerUser %d", burst, n, maxConnsPerUser)
		}
	}
}

func perUserBurst(t *testing.T) int {
	_, _, listen := limitsBroker(t)
	guest := testbroker.ClientOptions{Username: "guest", Password: "guest-secret-3"}
	const tries = 3 * maxConnsPerUser
	var (
		mu   sync.Mutex
		in   []net.Conn
		wg   sync.WaitGroup
		gate = make(chan struct{})
	)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			conn, code, err := testbroker.RawConnect(listen, fmt.Sprintf("guest-%d", i), guest, nil)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if code == 0 {
				in = append(in, conn)
			} else {
				conn.Close()
			}
		}()
	}
	close(gate)
	wg.Wait()
	for _, c := range in {
		defer c.Close()
	}
	t.Logf("%d concurrent CONNECTs of one user: %d let in (limit %d)", tries, len(in), maxConnsPerUser)
	return len(in)
}

// ATTACK (the bridge's own password, e.g. read on the bridge's machine):
// the bridge's user is exempt from maxConnsPerUser, so it can fill
// maxClients. Then the bridge's own login (after any drop, or after one
// takeover with its client id) is refused with "server unavailable": the
// bridge cannot take its connection back, so the release of every maglock
// (broker hazard) lasts as long as the attacker holds the sockets, and
// Home Assistant is locked out too. README says a takeover is taken back.
func TestAttackBridgeUserFillsMaxClients(t *testing.T) {
	attackProbe(t)
	_, cfg, listen := limitsBroker(t)
	bridgeUser := testbroker.ClientOptions{Username: "doorbridge", Password: "bridge-secret-1"}
	for i := range maxClients {
		conn, code, err := testbroker.RawConnect(listen, fmt.Sprintf("squat-%d", i), bridgeUser, nil)
		if err != nil || code != 0 {
			t.Logf("squatting connection %d refused: code %d, %v", i, code, err)
			break
		}
		defer conn.Close()
	}
	conn, code, err := testbroker.RawConnect(listen, cfg.ClientID(), bridgeUser, nil)
	if err == nil {
		conn.Close()
	}
	haConn, haCode, haErr := testbroker.RawConnect(listen, "ha", testbroker.ClientOptions{Username: "homeassistant", Password: "ha-secret-2"}, nil)
	if haErr == nil {
		haConn.Close()
	}
	t.Logf("after %d connections of the bridge's user: the bridge's login code %d (%v), Home Assistant's code %d (%v)", maxClients, code, err, haCode, haErr)
	if err != nil || code != 0 {
		t.Errorf("the bridge cannot log in to its own broker while its user's password holds %d other connections", maxClients)
	}
}
