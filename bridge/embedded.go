package bridge

import (
	"fmt"
	"log/slog"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// EmbeddedBroker is the in-process mochi-mqtt broker used when mqtt.url is
// empty. It has no authentication, so config validation keeps it on loopback.
type EmbeddedBroker struct {
	srv *mochi.Server
	tcp *listeners.TCP
}

// StartEmbeddedBroker starts mochi-mqtt listening on addr ("127.0.0.1:0"
// picks a free port; Addr reports the real one).
func StartEmbeddedBroker(addr string, log *slog.Logger) (*EmbeddedBroker, error) {
	srv := mochi.New(&mochi.Options{
		InlineClient: false,
		Logger:       log.With("component", "embedded-broker"),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listen %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &EmbeddedBroker{srv: srv, tcp: tcp}, nil
}

// Addr is the address the broker listens on.
func (e *EmbeddedBroker) Addr() string { return e.tcp.Address() }

// URL is the broker's tcp:// URL.
func (e *EmbeddedBroker) URL() string { return "tcp://" + e.Addr() }

// Close stops the broker.
func (e *EmbeddedBroker) Close() error { return e.srv.Close() }
