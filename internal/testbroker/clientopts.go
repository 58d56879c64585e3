package testbroker

import (
	"crypto/tls"
	"errors"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ClientOptions are the login and TLS settings of a test client, for brokers with
// authentication or TLS listeners. The zero value is an anonymous plain client.
type ClientOptions struct {
	Username string
	Password string
	// TLS is the client's TLS configuration, for ssl:// URLs.
	TLS *tls.Config
}

func (o ClientOptions) apply(opts *paho.ClientOptions) {
	if o.Username != "" {
		opts.SetUsername(o.Username).SetPassword(o.Password)
	}
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
	}
	// No fallback to MQTT 3.1 after a refusal: it would hide the broker's answer.
	opts.SetProtocolVersion(4)
}

// TryConnect makes one connection attempt with o and returns its error (nil if the broker
// accepted the client, which is then disconnected at once). It never fails the test: use it to
// check that a broker refuses a client.
func TryConnect(url, clientID string, o ClientOptions) error {
	opts := paho.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetCleanSession(true).
		SetConnectTimeout(ConnectTimeout).
		SetAutoReconnect(false)
	o.apply(opts)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(ConnectTimeout + time.Second) {
		return errors.New("testbroker: no answer to CONNECT")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(0)
	return nil
}
