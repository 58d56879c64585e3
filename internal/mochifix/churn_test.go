package mochifix_test

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/broker"
)

// The embedded broker as users run it, under the churn that tripped mochi
// v2.7.9's races (run with -race, as CI does): clients publishing retained
// messages while others subscribe to wildcards and reconnect with the same
// client id. Every retained message is then delivered to a new subscriber,
// and the broker closes promptly with clients still connected.
func TestEmbeddedBrokerUnderChurn(t *testing.T) {
	eb, err := broker.StartPlain("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			eb.Close()
		}
	})
	connect := func(id string) paho.Client {
		t.Helper()
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + eb.Addr()).SetClientID(id).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		return c
	}
	wait := func(tok paho.Token, what string) {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Errorf("%s: %v", what, tok.Error())
		}
	}

	// Each publisher stores its topics again and again: replacing a retained
	// message is the write that raced the subscriptions' scans.
	const publishers, messages, passes, subscribers, rounds = 4, 10, 8, 4, 25
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := connect(fmt.Sprintf("pub%d", p))
			defer c.Disconnect(0)
			for pass := range passes {
				for i := range messages {
					wait(c.Publish(fmt.Sprintf("churn/%d/%d", p, i), 1, true, fmt.Sprint(pass)), "publish")
				}
			}
		}()
	}
	for s := range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				c := connect(fmt.Sprintf("sub%d", s)) // the same id: a quick reconnect
				wait(c.Subscribe("churn/#", 1, nil), "subscribe")
				c.Disconnect(0)
			}
		}()
	}
	wg.Wait()

	got := make(chan string, publishers*messages)
	c := connect("late")
	wait(c.Subscribe("churn/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }), "late subscribe")
	seen := map[string]bool{}
	for len(seen) < publishers*messages {
		select {
		case topic := <-got:
			seen[topic] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("a new subscriber got %d of %d retained messages", len(seen), publishers*messages)
		}
	}

	// Close with a client still connected: mochi's own listener could
	// deadlock here.
	done := make(chan struct{})
	go func() { eb.Close(); close(done) }()
	select {
	case <-done:
		closed = true
	case <-time.After(10 * time.Second):
		t.Fatal("the embedded broker did not close within 10 s with a client connected")
	}
	c.Disconnect(0)
}
