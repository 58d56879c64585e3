package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/mqttclient"
)

// connectOnce connects a one-shot client (a clean session, no reconnects) to
// the first of cfg's brokers that accepts username, as clientID. When none
// does, the error says in plain words what went wrong with each broker.
func connectOnce(cfg *config.Config, username, password, clientID string, timeout time.Duration) (paho.Client, error) {
	var mu sync.Mutex
	var failures []string
	report := func(broker string, err error) {
		if err != nil {
			mu.Lock()
			failures = append(failures, broker+": "+mqttclient.ExplainConnectError(err))
			mu.Unlock()
		}
	}
	urls := mqttclient.DialURLs(cfg)
	where := strings.Join(urls, ", ")
	opts, err := mqttclient.Options(cfg, mqttclient.Settings{URLs: urls, Username: username, Password: password, Timeout: timeout, Report: report})
	if err != nil {
		return nil, err
	}
	// The write timeout bounds every SUBSCRIBE and PUBLISH hand-off: paho
	// v1.5.1 checks that it is connected, then hands the packet to its
	// writer, and a connection lost in between leaves nobody to take it
	// (paho's default wait is 30 s). A running bridge taking its session
	// back from test-door does exactly that.
	opts.SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetWriteTimeout(timeout)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(time.Duration(len(urls))*timeout + time.Second) {
		return nil, fmt.Errorf("broker %s: no answer within %v", where, timeout)
	}
	if err := tok.Error(); err != nil {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) > 0 {
			return nil, fmt.Errorf("broker %s", strings.Join(failures, "; "))
		}
		return nil, fmt.Errorf("broker %s: %s", where, mqttclient.ExplainConnectError(err))
	}
	return c, nil
}
