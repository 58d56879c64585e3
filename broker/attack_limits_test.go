package broker

import (
	"fmt"
	"net"
	"sync"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

func limitsBroker(t *testing.T) (*Broker, *config.Config, string) {
	t.Helper()
	return startWithUsers(t, [][2]string{{"guest", "guest-secret-3"}, {"homeassistant", "ha-secret-2"}}, []config.BrokerACL{
		{Username: "guest", Publish: []string{"guest/#"}, Subscribe: []string{"guest/#"}},
		{Username: "homeassistant", Publish: []string{"homeassistant/#"}, Subscribe: []string{"#"}},
	})
}

// ATTACK (a broker user with few rights): the per-user limit is checked in
// OnConnectAuthenticate but counted only in OnSessionEstablished, after
// the session hook and the CONNACK: CONNECTs sent at once all pass the
// check before any is counted.
func TestAttackPerUserLimitRace(t *testing.T) {
	attackProbe(t) // 10 bursts with bcrypt: ~13 s under -race
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

// The last of maxClients' slots is the bridge's client id's: other users
// together (here maxClients-1 users of one connection each) cannot fill
// the broker, and every slot given back is counted once.
func TestEmbeddedAuthReservesTheBridgesSlot(t *testing.T) {
	h := &authHook{bridgeID: "doorbridge-home", bridgeUser: "doorbridge",
		conns: map[string]int{}, byConn: map[net.Conn]string{}}
	client := func(id string) *mochi.Client {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		cl := &mochi.Client{ID: id}
		cl.Net.Conn = a
		return cl
	}
	var held []*mochi.Client
	for i := range maxClients - 1 {
		cl := client(fmt.Sprint("c", i))
		if why := h.reserve(cl, fmt.Sprint("user", i)); why != "" {
			t.Fatalf("client %d refused: %s", i, why)
		}
		held = append(held, cl)
	}
	if why := h.reserve(client("late"), "late-user"); why == "" {
		t.Errorf("a client took the bridge's slot (%d others already in)", maxClients-1)
	}
	if why := h.reserve(client("doorbridge-home"), "doorbridge"); why != "" {
		t.Errorf("the bridge refused with %d other clients in: %s", maxClients-1, why)
	}
	for _, cl := range held {
		h.release(cl.Net.Conn)
		h.release(cl.Net.Conn) // a second release changes nothing
	}
	if h.others != 0 || len(h.byConn) != 0 {
		t.Errorf("after every release: %d others, %d connections counted", h.others, len(h.byConn))
	}
}
