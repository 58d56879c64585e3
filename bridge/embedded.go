package bridge

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/doorbridge/doorbridge/config"
)

// EmbeddedBroker is the in-process mochi-mqtt broker used when no broker URL
// is configured. Without embedded_broker.users it has no authentication, so
// config validation keeps it on loopback; with users, every client must log
// in and may then do only what its acl entry allows.
type EmbeddedBroker struct {
	srv *mochi.Server
	tcp *listeners.TCP
	tls *listeners.TCP
}

// StartEmbeddedBroker starts mochi-mqtt without authentication on addr
// ("127.0.0.1:0" picks a free port; Addr reports the real one).
func StartEmbeddedBroker(addr string, log *slog.Logger) (*EmbeddedBroker, error) {
	return startEmbedded(config.EmbeddedBroker{Listen: addr}, nil, log)
}

// StartEmbeddedBrokerConfig starts cfg's embedded broker: the listen
// address, the TLS listener when tls_listen is set, and, when users are
// configured, logins and the acl. The bridge logs in as mqtt.username; the
// password it holds must be that user's, or the broker is not started.
func StartEmbeddedBrokerConfig(cfg *config.Config, log *slog.Logger) (*EmbeddedBroker, error) {
	var hook mochi.Hook
	if len(cfg.EmbeddedBroker.Users) > 0 {
		h, err := newAuthHook(cfg, log.With("component", "embedded-broker"))
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		hook = h
	}
	return startEmbedded(cfg.EmbeddedBroker, hook, log)
}

func startEmbedded(e config.EmbeddedBroker, hook mochi.Hook, log *slog.Logger) (*EmbeddedBroker, error) {
	srv := mochi.New(&mochi.Options{
		InlineClient: false,
		Logger:       log.With("component", "embedded-broker"),
	})
	if hook == nil {
		hook = new(auth.AllowHook)
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	eb := &EmbeddedBroker{srv: srv}
	eb.tcp = listeners.NewTCP(listeners.Config{ID: "tcp", Address: e.Listen})
	if err := srv.AddListener(eb.tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: embedded_broker.listen %s: %w", e.Listen, err)
	}
	if e.TLSListen != "" {
		cert, err := e.EmbeddedTLSCertificate()
		if err != nil {
			closeWithin(srv.Close, closeTimeout, log)
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		eb.tls = listeners.NewTCP(listeners.Config{ID: "tls", Address: e.TLSListen, TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		}})
		if err := srv.AddListener(eb.tls); err != nil {
			closeWithin(srv.Close, closeTimeout, log)
			return nil, fmt.Errorf("embedded broker: embedded_broker.tls_listen %s: %w", e.TLSListen, err)
		}
	}
	if err := srv.Serve(); err != nil {
		closeWithin(srv.Close, closeTimeout, log)
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return eb, nil
}

// closeTimeout bounds closing a broker that failed to start.
const closeTimeout = time.Second

// Addr is the address the plain listener listens on.
func (e *EmbeddedBroker) Addr() string { return e.tcp.Address() }

// TLSAddr is the address of the TLS listener ("" without one).
func (e *EmbeddedBroker) TLSAddr() string {
	if e.tls == nil {
		return ""
	}
	return e.tls.Address()
}

// URL is the tcp:// URL the bridge connects to (an unspecified listen
// address is reached on loopback).
func (e *EmbeddedBroker) URL() string { return "tcp://" + loopbackAddr(e.Addr()) }

// Close stops the broker.
func (e *EmbeddedBroker) Close() error { return e.srv.Close() }
