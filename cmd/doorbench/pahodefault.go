package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// pahoDefaultHow explains the comparison figure.
const pahoDefaultHow = "measured: paho.mqtt.golang clients with paho's default options (KeepAlive 30 s, " +
	"PingTimeout 10 s), connected through the proxy, started 35 s / clients apart so that their keepalive " +
	"phases differ; the proxy goes silent and each client's OnConnectionLost is timed. " +
	"computed: paho checks every 5 s; it sends PINGREQ at the first check 30 s or more after the last " +
	"packet received, and gives up at the first check 10 s or more after that ping (10-15 s later), " +
	"so a silent link is noticed 10 s (silence just before a ping) to 50 s (just after a PINGRESP) after it began"

// measurePahoDefault measures how long a paho client with default
// keepalive settings takes to notice a silent link: what a bridge without a
// heartbeat round trip of its own gets.
func (b *bench) measurePahoDefault(brokerAddr string, clients int) (*pahoDefault, error) {
	px, err := testbroker.StartProxy(brokerAddr)
	if err != nil {
		return nil, err
	}
	defer px.Close()
	var mu sync.Mutex
	lost := map[int]time.Time{}
	var cs []paho.Client
	defer func() {
		for _, c := range cs {
			c.Disconnect(0)
		}
	}()
	spacing := 35 * time.Second / time.Duration(clients)
	for i := range clients {
		opts := paho.NewClientOptions().AddBroker(px.URL()).
			SetClientID(fmt.Sprintf("paho-default-%d", i)).
			SetAutoReconnect(false).
			SetConnectionLostHandler(func(paho.Client, error) {
				mu.Lock()
				lost[i] = time.Now()
				mu.Unlock()
			})
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("paho client %d: connect: %v", i, tok.Error())
		}
		cs = append(cs, c)
		if i < clients-1 {
			time.Sleep(spacing) // spread the clients' keepalive phases
		}
	}
	px.Pause()
	t0 := time.Now() // nothing crosses from here on
	deadline := time.Now().Add(70 * time.Second)
	for {
		mu.Lock()
		n := len(lost)
		mu.Unlock()
		if n == clients || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // paho reports through a callback; poll its record
	}
	px.Resume()
	var samples []float64
	mu.Lock()
	for _, at := range lost {
		samples = append(samples, ms(at.Sub(t0)))
	}
	mu.Unlock()
	if len(samples) < clients {
		return nil, fmt.Errorf("only %d of %d paho clients noticed the silent link within 70 s", len(samples), clients)
	}
	return &pahoDefault{Measured: summarize(samples), ComputedMinS: 10, ComputedMaxS: 50, How: pahoDefaultHow}, nil
}
