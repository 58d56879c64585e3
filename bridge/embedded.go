package bridge

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/mochifix"
)

// EmbeddedBroker is the in-process mochi-mqtt broker used when no broker URL
// is configured. Without embedded_broker.users it has no authentication, so
// config validation keeps it on loopback; with users, every client must log
// in and may then do only what its acl entry allows.
type EmbeddedBroker struct {
	srv *mochi.Server
	tcp *mochifix.Listener
	tls *mochifix.Listener
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
	caps := mochi.NewDefaultServerCapabilities()
	// mochi reserves a packet's declared length before reading it, the
	// CONNECT too, before any password is checked: without a maximum, 5
	// bytes claim 256 MB. Checked on the fixed header, before the body.
	caps.MaximumPacketSize = MaxPacketSize
	caps.MaximumClients = maxClients
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		InlineClient: false,
		Logger:       log.With("component", "embedded-broker"),
		// $SYS topics are stored retained every second without any hook,
		// racing the scans of new subscriptions (mochifix.RetainHook cannot
		// bracket them), and wake the broker for nobody: published once at
		// start only.
		SysTopicResendInterval: sysTopicsNever,
	})
	if hook == nil {
		hook = new(auth.AllowHook)
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	// mochifix works around mochi v2.7.9's bugs: its own listeners (no data
	// race on accept, no deadlock on close), clients that reconnect quickly
	// keep their subscriptions, retained messages stored without a race.
	eb := &EmbeddedBroker{srv: srv}
	var err error
	if eb.tcp, err = mochifix.Listen("tcp", e.Listen, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: embedded_broker.listen %s: %w", e.Listen, err)
	}
	eb.tcp.Limit(maxPendingLogins, connectTimeout)
	lns := []*mochifix.Listener{eb.tcp}
	if e.TLSListen != "" {
		cert, err := e.EmbeddedTLSCertificate()
		if err != nil {
			eb.tcp.CloseAll(false)
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		eb.tls, err = mochifix.Listen("tls", e.TLSListen, &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		})
		if err != nil {
			eb.tcp.CloseAll(false)
			return nil, fmt.Errorf("embedded broker: embedded_broker.tls_listen %s: %w", e.TLSListen, err)
		}
		eb.tls.Limit(maxPendingLogins, connectTimeout)
		lns = append(lns, eb.tls)
	}
	fail := func(err error) (*EmbeddedBroker, error) {
		for _, l := range lns {
			l.CloseAll(false)
		}
		closeWithin(srv.Close, closeTimeout, log)
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := srv.AddHook(&mochifix.SessionHook{Server: srv, Listeners: lns}, nil); err != nil {
		return fail(err)
	}
	if err := srv.AddHook(new(mochifix.RetainHook), nil); err != nil { // the last hook
		return fail(err)
	}
	for _, l := range lns {
		if err := srv.AddListener(l); err != nil {
			return fail(err)
		}
	}
	if err := srv.Serve(); err != nil {
		return fail(err)
	}
	return eb, nil
}

// What a client may make the embedded broker hold. The bridge's largest
// message is a discovery config of about 4.4 kB (a door with every input
// and a long name; the bridge device's own does not grow with the number
// of doors); Home Assistant's and other integrations' configs are of the
// same order. A client that has not logged in holds at most one packet
// (read twice by mochi: the bytes and a copy) and mochi's per-client
// buffers for connectTimeout, and at most maxPendingLogins of them per
// listener: about 32 × 0.6 MB.
const (
	// MaxPacketSize is the largest MQTT packet the embedded broker takes
	// (header included); a larger one costs its sender the connection.
	MaxPacketSize = 256 << 10
	// maxClients bounds the clients logged in at once.
	maxClients = 256
	// maxPendingLogins bounds, per listener, the connections that have not
	// logged in yet; a new one closes the oldest.
	maxPendingLogins = 32
	// connectTimeout is how long a new connection has to log in.
	connectTimeout = 10 * time.Second
)

// sysTopicsNever is mochi's $SYS interval, in seconds: 100 years.
const sysTopicsNever = 100 * 365 * 24 * 3600

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
