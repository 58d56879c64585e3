package mqttclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

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
	// it, and returns what to call, once, when that connection closes (nil:
	// nothing). The bridge gives each connection its own identity, and keeps
	// the current one, to drop it when its heartbeat stops coming back.
	Track func(c *Conn) (onClose func(err error))
	// MaxPayload is the largest payload a PUBLISH from the broker passes
	// whole; a larger one reaches paho as an empty PUBLISH on OversizedTopic
	// + its topic (bigfilter.go). 0: DefaultMaxPayload.
	MaxPayload int
}

// DefaultMaxPayload is Settings.MaxPayload's default.
const DefaultMaxPayload = 64 << 10

// ClientOptions returns paho options for connecting to the brokers of s: TLS from
// cfg's mqtt section, MQTT 3.1.1 only (paho's fallback to 3.1 would hide
// the broker's answer), and a dialer that reports every attempt and
// tracks every connection (see Settings). Connection lifecycle settings
// (retries, keepalive, handlers) are the caller's.
func ClientOptions(cfg *config.Config, s Settings) (*paho.ClientOptions, error) {
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

// dialer opens broker connections itself, TCP or TLS, so that the cause of
// every failed attempt is seen (paho keeps it to itself while it retries).
type dialer struct {
	tls     *tls.Config
	timeout time.Duration
	report  func(broker string, err error)
	track   func(*Conn) func(error)
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
		wc.onClose = d.track(wc)
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

// Conn is one connection the dialer opened. It reports what goes wrong
// between the dial and the broker's CONNACK: a refused login, or a TLS
// alert (with TLS 1.3 the broker judges the client certificate only after
// the handshake, so its verdict arrives on the first read). Once the
// CONNACK is in, it is a plain connection.
//
// It also reports its own loss (Settings.Track): paho closes the
// connection it loses before it starts to reconnect, so the report is of
// exactly this connection, even when paho's own connection-lost callback
// runs after the next one is up.
type Conn struct {
	net.Conn
	rd     *bufio.Reader // nil: read the connection directly
	filter *packetFilter // once the broker accepted us: oversized messages skipped (bigfilter.go)
	fail   func(error)

	onClose  func(err error)
	accepted atomic.Bool // the broker accepted the connection (CONNACK 0)
	closed   atomic.Bool
	lastErr  atomic.Pointer[error] // the last read or write error
	once     sync.Once

	settled atomic.Bool // the CONNACK is in, or the attempt failed: nothing more to watch

	mu   sync.Mutex
	head []byte // the first bytes read, up to a CONNACK's 4
	done bool
}

// readBuffer is the read buffer under paho, which reads every packet's
// header a byte at a time: buffered, a flood of small messages costs one
// system call per buffer, not three per message.
const readBuffer = 32 << 10

func (c *Conn) Read(p []byte) (int, error) {
	if c.filter != nil && c.settled.Load() && c.accepted.Load() {
		n, err := c.filter.read(p)
		if err != nil {
			c.lastErr.Store(&err)
		}
		return n, err
	}
	var n int
	var err error
	if c.rd != nil {
		n, err = c.rd.Read(p)
	} else {
		n, err = c.Conn.Read(p)
	}
	if err != nil {
		c.lastErr.Store(&err)
	}
	if c.settled.Load() {
		return n, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return n, err
	}
	defer func() { c.settled.Store(c.done) }()
	c.head = append(c.head, p[:min(n, 4-len(c.head))]...)
	switch {
	case len(c.head) == 4:
		c.done = true
		if c.head[0]>>4 == packets.Connack && c.head[3] != packets.Accepted {
			c.fail(connackError(c.head[3]))
		} else {
			c.accepted.Store(true)
			c.fail(nil)
		}
	case err != nil:
		c.done = true
		c.fail(err)
	}
	return n, err
}

func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.lastErr.Store(&err)
	}
	if err != nil && !c.settled.Load() {
		c.mu.Lock()
		report := !c.done
		c.done = true
		c.mu.Unlock()
		if report {
			c.fail(err)
		}
	}
	return n, err
}

// Close closes the connection and reports, once, that it is gone.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.closed.Store(true)
		if c.onClose != nil {
			why := errors.New("connection closed")
			if e := c.lastErr.Load(); e != nil {
				why = *e
			}
			c.onClose(why)
		}
	})
	return err
}

// Live reports whether the broker accepted this connection and it is still open.
func (c *Conn) Live() bool { return c.accepted.Load() && !c.closed.Load() }

// connackError is the broker's refusal code rc as an error.
func connackError(rc byte) error {
	if err, ok := packets.ConnErrors[rc]; ok {
		return &refusedError{rc: rc, err: err}
	}
	return &refusedError{rc: rc, err: fmt.Errorf("CONNACK return code %d", rc)}
}

type refusedError struct {
	rc  byte
	err error
}

func (e *refusedError) Error() string { return "broker refused the connection: " + e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// ExplainConnectError says in plain words why a connection to the broker
// failed and which setting to check.
func ExplainConnectError(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		refused   *refusedError
		opErr     *net.OpError
		dnsErr    *net.DNSError
		netErr    net.Error
		stage     *stageError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "TLS: certificate signed by unknown authority: check mqtt.ca_file (it must hold the CA that signed the broker's certificate)"
	case errors.As(err, &hostname):
		return fmt.Sprintf("TLS: the broker's certificate is for %s, not %s: check the host in mqtt.url(s), or set mqtt.server_name to a name the certificate holds", certNames(hostname.Certificate), hostname.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert != nil:
		if time.Now().Before(invalid.Cert.NotBefore) {
			return fmt.Sprintf("TLS: the broker's certificate is not valid before %s: check this machine's clock", invalid.Cert.NotBefore.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("TLS: the broker's certificate expired at %s: renew it, or check this machine's clock", invalid.Cert.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &invalid):
		return "TLS: the broker's certificate is not acceptable (" + strings.TrimPrefix(invalid.Error(), "x509: ") + "): check the broker's certificate and mqtt.ca_file"
	case errors.As(err, &verify):
		return fmt.Sprintf("TLS: the broker's certificate could not be verified (%v): check mqtt.ca_file", verify.Err)
	case errors.As(err, &record):
		return "TLS: the broker did not answer in TLS: is this port a TLS listener (usually 8883)? use tcp:// for a plain one"
	case errors.As(err, &refused):
		switch refused.rc {
		case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
			return "the broker refused the login (" + refused.err.Error() + "): check mqtt.username and mqtt.password_file, and the broker's users"
		case packets.ErrRefusedIDRejected:
			return "the broker rejected the client id: check mqtt.client_id"
		default:
			return refused.Error()
		}
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return explainAlert(opErr.Err.Error())
	case errors.As(err, &stage) && isClosed(err) && stage.stage == "handshake":
		return "TLS: the broker closed the connection during the TLS handshake: is this port a TLS listener (usually 8883)? use tcp:// for a plain one"
	case errors.As(err, &stage) && isClosed(err):
		return "TLS: the broker closed the connection after the handshake, most likely refusing our client certificate: check mqtt.cert_file and mqtt.key_file, and the broker's log"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve the broker's host name %q: %v", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: no broker listening at that address"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "no answer from the broker in time (wrong host, a firewall, or a silent broker)"
	case isClosed(err):
		return "the broker closed the connection before accepting it (a TLS port needs ssl://; or the broker refuses this client: see its log)"
	}
	return err.Error()
}

// isClosed reports whether err is the peer closing or resetting the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "other names"
	}
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no host name (only the common name " + strconv.Quote(c.Subject.CommonName) + ", which TLS ignores)"
	}
	return strings.Join(names, ", ")
}

// explainAlert explains a TLS alert the broker sent, such as "tls: certificate required".
func explainAlert(alert string) string {
	a := strings.TrimPrefix(alert, "tls: ")
	switch {
	case strings.Contains(a, "certificate required"):
		return "TLS: the broker requires a client certificate: set mqtt.cert_file and mqtt.key_file"
	case strings.Contains(a, "certificate"), strings.Contains(a, "unknown ca"):
		return "TLS: the broker refused our client certificate (" + a + "): check mqtt.cert_file and mqtt.key_file, and the CA the broker trusts"
	default:
		return "TLS: the broker ended the handshake (" + a + "): check the broker's TLS settings and its log"
	}
}

// Reporter logs each distinct reason a broker cannot be reached once,
// not once per retry, until a connection succeeds. Every attempt is logged
// at debug level.
type Reporter struct {
	log   func(broker, reason string)
	debug func(broker, reason string)
	mu    sync.Mutex
	seen  map[string]bool
	last  string // the broker that accepted the latest connection
}

// NewReporter returns a Reporter that logs a new reason with log and
// every attempt with debug.
func NewReporter(log, debug func(broker, reason string)) *Reporter {
	return &Reporter{log: log, debug: debug, seen: map[string]bool{}}
}

// Report takes the outcome of one attempt (Settings.Report).
func (r *Reporter) Report(broker string, err error) {
	if err == nil {
		r.mu.Lock()
		r.last = broker
		r.mu.Unlock()
		return
	}
	reason := ExplainConnectError(err)
	r.mu.Lock()
	key := broker + "\x00" + reason
	first := !r.seen[key]
	r.seen[key] = true
	r.mu.Unlock()
	r.debug(broker, reason)
	if first {
		r.log(broker, reason)
	}
}

// Connected forgets what was logged, so that the next failure is news
// again, and returns the broker that accepted the connection.
func (r *Reporter) Connected() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.seen)
	return r.last
}
