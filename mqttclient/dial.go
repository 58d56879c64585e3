package mqttclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/config"
)

// DialURLs returns the brokers a client of cfg dials, in order: the
// configured ones (cfg.MQTT.BrokerURLs: mqtt.urls or mqtt.url), else the
// embedded broker's socket or listen address (an unspecified host, such as
// 0.0.0.0, is reached on loopback).
func DialURLs(cfg *config.Config) []string {
	if urls := cfg.MQTT.BrokerURLs(); len(urls) > 0 {
		return urls
	}
	if e := &cfg.EmbeddedBroker; e.Listen == "" {
		return []string{"unix://" + e.Socket}
	}
	return []string{"tcp://" + LoopbackAddr(cfg.EmbeddedBroker.Listen)}
}

// LoopbackAddr turns a listen address into one to dial: a missing or
// unspecified host becomes the loopback address of its family.
func LoopbackAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() == nil:
		host = "::1"
	case ip != nil && ip.IsUnspecified():
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Settings are how a client reaches its brokers, besides the config's TLS
// settings.
type Settings struct {
	URLs               []string // tried in order
	Username, Password string
	Timeout            time.Duration // for each attempt, the TLS handshake included
	// Report, when set, is told the outcome of every attempt: the reason it
	// failed, or nil once a broker accepted the connection.
	Report func(broker string, err error)
	// Track, when set, is told of every connection opened, before paho uses
	// it; it may ask, with c.OnClose, to hear of its loss. The bridge gives
	// each connection its own identity, and keeps the current one, to drop
	// it when its heartbeat stops coming back.
	Track func(c *Conn)
	// MaxPayload is the largest payload a PUBLISH from the broker passes
	// whole; a larger one reaches paho as an empty PUBLISH on OversizedTopic
	// + its topic (bigfilter.go). 0: DefaultMaxPayload.
	MaxPayload int
}

// DefaultMaxPayload is Settings.MaxPayload's default.
const DefaultMaxPayload = 64 << 10

// Options returns paho options for connecting to the brokers of s: TLS from
// cfg's mqtt section, MQTT 3.1.1 only (paho's fallback to 3.1 would hide
// the broker's answer), and a dialer that reports every attempt and
// tracks every connection (see Settings). Connection lifecycle settings
// (retries, keepalive, handlers) are the caller's.
func Options(cfg *config.Config, s Settings) (*paho.ClientOptions, error) {
	opts := paho.NewClientOptions().
		SetUsername(s.Username).
		SetPassword(s.Password).
		SetProtocolVersion(4).
		SetConnectTimeout(s.Timeout)
	for _, u := range s.URLs {
		opts.AddBroker(u)
	}
	var tc *tls.Config
	if cfg.MQTT.UsesTLS() {
		var err error
		if tc, err = cfg.MQTT.TLSConfig(); err != nil {
			return nil, err
		}
	}
	maxPayload := s.MaxPayload
	if maxPayload == 0 {
		maxPayload = DefaultMaxPayload
	}
	d := &dialer{tls: tc, timeout: s.Timeout, report: s.Report, track: s.Track, maxPacket: packetLimit(maxPayload)}
	opts.SetCustomOpenConnectionFn(d.open)
	return opts, nil
}

// dialer opens broker connections itself (TCP, TLS, a unix socket or an
// in-process pipe), so that the cause of every failed attempt is seen
// (paho keeps it to itself while it retries).
type dialer struct {
	tls     *tls.Config
	timeout time.Duration
	report  func(broker string, err error)
	track   func(*Conn)
	// maxPacket is the largest PUBLISH passed to paho whole (packetLimit).
	maxPacket int
}

func (d *dialer) open(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
	broker := u.Redacted()
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	var conn net.Conn
	var err error
	switch {
	case config.IsTLSScheme(u.Scheme):
		conn, err = d.dialTLS(ctx, u.Host)
	case u.Scheme == "inproc": // an in-process broker's (RegisterInproc)
		conn, err = dialInproc(ctx, u.Host)
	case u.Scheme == "unix": // the embedded broker's socket
		conn, err = (&net.Dialer{}).DialContext(ctx, "unix", u.Path)
	default:
		conn, err = dialTCP(ctx, u.Host)
	}
	if err != nil {
		d.fail(broker, err)
		return nil, err
	}
	wc := &Conn{Conn: conn, rd: bufio.NewReaderSize(conn, readBuffer), fail: func(err error) { d.fail(broker, err) }}
	wc.filter = &packetFilter{rd: wc.rd, max: d.maxPacket}
	if d.track != nil {
		d.track(wc)
	}
	return wc, nil
}

// inprocDials are the in-process brokers' ways in, by the host of their
// "inproc://" URL.
var inprocDials sync.Map // string → func(context.Context) (net.Conn, error)

// RegisterInproc lets this process's clients reach an in-process broker
// (the embedded one) at "inproc://" + name, through dial, until
// unregister is called. Only this process can dial it.
func RegisterInproc(name string, dial func(context.Context) (net.Conn, error)) (unregister func()) {
	inprocDials.Store(name, dial)
	return func() { inprocDials.Delete(name) }
}

// dialInproc connects to the in-process broker registered as name.
func dialInproc(ctx context.Context, name string) (net.Conn, error) {
	v, ok := inprocDials.Load(name)
	if !ok {
		return nil, fmt.Errorf("no embedded broker %q in this process", name)
	}
	return v.(func(context.Context) (net.Conn, error))(ctx)
}

// verdictWait bounds how long a TLS 1.3 connection waits, after the
// handshake, for the broker's verdict on the client certificate.
const verdictWait = 200 * time.Millisecond

// dialTLS dials and completes the TLS handshake. In TLS 1.3 a client's
// handshake ends before the broker has judged its certificate; when the
// broker asked for one, dialTLS waits briefly for a refusal, so that it is
// reported as what it is rather than as a connection closed later.
func (d *dialer) dialTLS(ctx context.Context, addr string) (net.Conn, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if d.tls != nil {
		tc = d.tls.Clone()
	}
	certs := tc.Certificates
	tc.Certificates = nil
	asked := false
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		if len(certs) > 0 {
			return &certs[0], nil
		}
		return &tls.Certificate{}, nil // none: the broker decides
	}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	conn, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, &stageError{stage: "handshake", err: err}
	}
	tconn := tls.Client(conn, tc)
	if err := tconn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, &stageError{stage: "handshake", err: err}
	}
	if !asked || tconn.ConnectionState().Version < tls.VersionTLS13 {
		return tconn, nil
	}
	var first [1]byte
	_ = tconn.SetReadDeadline(time.Now().Add(verdictWait))
	n, err := tconn.Read(first[:])
	_ = tconn.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n > 0: // the broker spoke first: keep what it said
		return &prefixConn{Conn: tconn, prefix: first[:n]}, nil
	case err == nil, errors.As(err, &ne) && ne.Timeout():
		return tconn, nil // no refusal: the certificate was accepted
	default:
		_ = tconn.Close()
		return nil, &stageError{stage: "verdict", err: err}
	}
}

// stageError marks where in a TLS connection an error happened.
type stageError struct {
	stage string // "handshake", or "verdict" (waiting for the client-certificate verdict)
	err   error
}

func (e *stageError) Error() string { return "TLS " + e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// prefixConn returns prefix before reading from the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (d *dialer) fail(broker string, err error) {
	if d.report != nil {
		d.report(broker, err)
	}
}
