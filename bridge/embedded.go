package bridge

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/mochifix"
	"github.com/doorbridge/doorbridge/mqttclient"
)

// EmbeddedBroker is the in-process mochi-mqtt broker used when no broker URL
// is configured. Without embedded_broker.users it has no authentication, so
// config validation keeps it on loopback; with users, every client must log
// in and may then do only what its acl entry allows.
type EmbeddedBroker struct {
	srv  *mochi.Server
	tcp  *mochifix.Listener // nil with a socket only
	tls  *mochifix.Listener
	unix *mochifix.Listener
	sock string
	// pipe is the bridge's own way in (BridgeURL): in-process, with its
	// own pending-login limit, out of reach of every socket.
	pipe       *mochifix.PipeListener
	pipeID     string
	unregister func() // the pipe, from the dialer's in-process brokers
	// flow keeps the bridge's queue in the broker from overflowing
	// (embedded_flood.go).
	flow *bridgeFlow
}

// inprocBrokers are the running embedded brokers by BridgeURL host (tests
// find a bridge's broker there).
var inprocBrokers sync.Map // string → *EmbeddedBroker

// socketMode lets the bridge's user and group connect to
// embedded_broker.socket, and nobody else.
const socketMode = 0o660

// StartEmbeddedBroker starts mochi-mqtt without authentication on addr
// ("127.0.0.1:0" picks a free port; Addr reports the real one).
func StartEmbeddedBroker(addr string, log *slog.Logger) (*EmbeddedBroker, error) {
	return startEmbedded(config.EmbeddedBroker{Listen: addr}, nil, nil, nil, log)
}

// StartEmbeddedBrokerConfig starts cfg's embedded broker: the listen
// address, the TLS listener when tls_listen is set, and, when users are
// configured, logins and the acl. The bridge logs in as mqtt.username; the
// password it holds must be that user's, or the broker is not started.
func StartEmbeddedBrokerConfig(cfg *config.Config, log *slog.Logger) (*EmbeddedBroker, error) {
	var hook mochi.Hook
	// The bridge's retained messages are its own, bounded by the config;
	// without users, anyone local could take its client id anyway.
	exempt := func(cl *mochi.Client) bool { return cl.ID == cfg.ClientID() }
	if len(cfg.EmbeddedBroker.Users) > 0 {
		exempt = func(cl *mochi.Client) bool { return string(cl.Properties.Username) == cfg.MQTT.Username }
		h, err := newAuthHook(cfg, log.With("component", "embedded-broker"))
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		hook = h
	}
	return startEmbedded(cfg.EmbeddedBroker, hook, exempt, liveOnlyTopics(NewTopics(cfg)), log)
}

// liveOnlyTopics tells the bridge's command, lockdown and republish
// topics: the embedded broker never stores retained messages there.
func liveOnlyTopics(t Topics) func(topic string) bool {
	cmd := newTopicPattern(t.DoorCommandWild)
	return func(topic string) bool {
		_, ok := cmd.match(topic)
		return ok || topic == t.Republish
	}
}

func startEmbedded(e config.EmbeddedBroker, hook mochi.Hook, exempt func(*mochi.Client) bool, liveOnly func(string) bool, log *slog.Logger) (*EmbeddedBroker, error) {
	caps := mochi.NewDefaultServerCapabilities()
	// mochi reserves a packet's declared length before reading it, the
	// CONNECT too, before any password is checked: without a maximum, 5
	// bytes claim 256 MB. Checked on the fixed header, before the body.
	caps.MaximumPacketSize = MaxPacketSize
	caps.MaximumClients = maxClients
	if _, ok := hook.(*authHook); ok {
		caps.MaximumClients = maxClients + bridgeSlack // authHook bounds clients itself
	}
	// mochi copies a message for each subscriber and queues up to this
	// many per client (8192 by default): a subscriber that stops reading
	// held 8192 × MaxPacketSize = 2 GiB of the bridge's memory. Beyond it,
	// mochi drops messages for that client only. The bridge's own client
	// reads as fast as messages come (its handlers only queue them).
	caps.MaximumClientWritesPending = maxWritesPending
	caps.MaximumInflight = maxWritesPending
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
	// The flow hook asks hook for permissions: mochi allows what any hook
	// allows, so hook must not answer ACL checks itself.
	flow := newBridgeFlow(exempt, hook, log.With("component", "embedded-broker"))
	if err := srv.AddHook(mochifix.WithoutACL{Hook: hook}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	// mochifix works around mochi v2.7.9's bugs: its own listeners (no data
	// race on accept, no deadlock on close), clients that reconnect quickly
	// keep their subscriptions, retained messages stored without a race,
	// no message for the bridge dropped by a full queue.
	eb := &EmbeddedBroker{srv: srv, sock: e.Socket, flow: flow}
	lns, err := eb.listen(e)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	fail := func(err error) (*EmbeddedBroker, error) {
		for _, l := range lns {
			l.CloseAll(false)
		}
		closeWithin(srv.Close, closeTimeout, log)
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	limits := newRetainLimitHook(log.With("component", "embedded-broker"), exempt)
	limits.dropped = flow.dropped
	limits.liveOnly = liveOnly
	if err := srv.AddHook(limits, nil); err != nil {
		return fail(err)
	}
	if err := srv.AddHook(flow.flow, nil); err != nil {
		return fail(err)
	}
	if err := srv.AddHook(&mochifix.SessionHook{Server: srv, Listeners: lns}, nil); err != nil {
		return fail(err)
	}
	if err := srv.AddHook(new(mochifix.RetainHook), nil); err != nil { // the last hook
		return fail(err)
	}
	if h, ok := hook.(*authHook); ok {
		for _, l := range lns {
			l.OnClose(h.release)
		}
	}
	for _, l := range lns {
		if err := srv.AddListener(l); err != nil {
			return fail(err)
		}
	}
	if err := srv.Serve(); err != nil {
		return fail(err)
	}
	eb.pipeID = fmt.Sprintf("embedded-%p", eb)
	inprocBrokers.Store(eb.pipeID, eb)
	eb.unregister = mqttclient.RegisterInproc(eb.pipeID, eb.pipe.Dial)
	return eb, nil
}

// listen opens e's listeners, each limited to maxPendingLogins connections
// that have not logged in; on an error it closes those it opened.
func (eb *EmbeddedBroker) listen(e config.EmbeddedBroker) ([]*mochifix.Listener, error) {
	eb.pipe = mochifix.NewPipeListener()
	lns := []*mochifix.Listener{mochifix.NewListener("inproc", eb.pipe)}
	lns[0].Limit(maxPendingLogins, connectTimeout)
	open := func(l *mochifix.Listener, err error, key, addr string) (*mochifix.Listener, error) {
		if err != nil {
			for _, l := range lns {
				l.CloseAll(false)
			}
			return nil, fmt.Errorf("embedded_broker.%s %s: %w", key, addr, err)
		}
		l.Limit(maxPendingLogins, connectTimeout)
		lns = append(lns, l)
		return l, nil
	}
	var err error
	if e.Listen != "" {
		l, lerr := mochifix.Listen("tcp", e.Listen, nil)
		if eb.tcp, err = open(l, lerr, "listen", e.Listen); err != nil {
			return nil, err
		}
	}
	if e.Socket != "" {
		l, lerr := mochifix.ListenUnix("unix", e.Socket, socketMode)
		if eb.unix, err = open(l, lerr, "socket", e.Socket); err != nil {
			return nil, err
		}
	}
	if e.TLSListen != "" {
		cert, cerr := e.EmbeddedTLSCertificate()
		if cerr != nil {
			for _, l := range lns {
				l.CloseAll(false)
			}
			return nil, cerr // names its key
		}
		l, lerr := mochifix.Listen("tls", e.TLSListen, &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		})
		if eb.tls, err = open(l, lerr, "tls_listen", e.TLSListen); err != nil {
			return nil, err
		}
	}
	return lns, nil
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
	// maxWritesPending bounds the messages queued, and those sent at QoS
	// 1 or 2 and not acknowledged, per client: with MaxPacketSize, 32 MiB
	// for a subscriber that stops reading.
	maxWritesPending = 128
	// maxClients bounds the clients logged in at once. With users, one
	// slot is the bridge's client id's alone (authHook), and mochi's own
	// limit, checked before any login, is bridgeSlack higher: the bridge's
	// reconnection, which logs in while its old connection is being cut,
	// is never refused for lack of room.
	maxClients  = 256
	bridgeSlack = 4
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

// Addr is the address the plain listener listens on ("" without one).
func (e *EmbeddedBroker) Addr() string {
	if e.tcp == nil {
		return ""
	}
	return e.tcp.Address()
}

// URL is the URL the bridge connects to: the plain listener (an
// unspecified listen address is reached on loopback), or the socket.
func (e *EmbeddedBroker) URL() string {
	if e.tcp == nil {
		return "unix://" + e.sock
	}
	return "tcp://" + mqttclient.LoopbackAddr(e.Addr())
}

// BridgeURL is the URL the bridge itself connects to: the in-process
// listener, which only this process can reach (RegisterInproc).
func (e *EmbeddedBroker) BridgeURL() string { return "inproc://" + e.pipeID }

// Close stops the broker.
func (e *EmbeddedBroker) Close() error {
	e.unregister()
	inprocBrokers.Delete(e.pipeID)
	return e.srv.Close()
}
