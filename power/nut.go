package power

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultNUTPort is upsd's standard TCP port.
const DefaultNUTPort = 3493

// DefaultNUTTimeout bounds a connection attempt and each request to upsd
// when NUTOptions.DialTimeout is zero.
const DefaultNUTTimeout = 2 * time.Second

// maxNUTLine bounds one line read from upsd, so a misbehaving peer cannot
// make Poll buffer without limit.
const maxNUTLine = 4096

// NUTOptions configure a NUT source.
type NUTOptions struct {
	// Host is upsd's host name or address (default "127.0.0.1").
	Host string
	// Port is upsd's TCP port (default DefaultNUTPort).
	Port int
	// UPS is the UPS name as upsd knows it, e.g. "ups1". Required.
	UPS string
	// Username and Password, if Username is set, are sent after connecting.
	// GET VAR needs no login; some upsd setups still want one.
	Username string
	Password string
	// DialTimeout bounds a connection attempt and each request's reply
	// (default DefaultNUTTimeout), so a silent upsd cannot hang Poll.
	DialTimeout time.Duration
}

// NUT is a UPS served by NUT's upsd, read with upsd's text protocol over TCP.
// It keeps one connection open and reconnects after any error. Mains power
// is lost when ups.status holds OB (on battery), LB (low battery) or FSD
// (forced shutdown, which upsmon sets when it is about to cut the load).
//
// A NUT is safe for concurrent use; requests are serialised.
type NUT struct {
	opts NUTOptions
	addr string // host:port
	req  string // the GET VAR request line

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// NewNUT returns a NUT source for opts, after applying defaults and checking
// the names that go on the wire. It does not connect until the first Poll.
func NewNUT(opts NUTOptions) (*NUT, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = DefaultNUTPort
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultNUTTimeout
	}
	switch {
	case opts.Port < 1 || opts.Port > 65535:
		return nil, fmt.Errorf("power: nut: port %d out of range 1..65535", opts.Port)
	case opts.DialTimeout < 0:
		return nil, fmt.Errorf("power: nut: negative dial timeout %s", opts.DialTimeout)
	case opts.UPS == "":
		return nil, errors.New("power: nut: ups name is required")
	case strings.ContainsFunc(opts.UPS, badNUTNameRune):
		return nil, fmt.Errorf("power: nut: ups name %q has spaces, quotes or control characters", opts.UPS)
	case strings.ContainsFunc(opts.Username, badNUTNameRune):
		return nil, fmt.Errorf("power: nut: username %q has spaces, quotes or control characters", opts.Username)
	case strings.ContainsFunc(opts.Password, isControl):
		return nil, errors.New("power: nut: password has control characters")
	case opts.Password != "" && opts.Username == "":
		return nil, errors.New("power: nut: password set without username")
	}
	return &NUT{
		opts: opts,
		addr: net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)),
		req:  "GET VAR " + opts.UPS + " ups.status\n",
	}, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func badNUTNameRune(r rune) bool { return isControl(r) || r == ' ' || r == '"' || r == '\\' }

// Name is "nut:" followed by ups@host:port.
func (n *NUT) Name() string { return "nut:" + n.opts.UPS + "@" + n.addr }

// Poll sends GET VAR <ups> ups.status and parses the answer; detail is the
// variable as upsd sent it, e.g. `ups.status "OB LB"`. Errors name the UPS,
// upsd's address and the cause, e.g.
// "power: nut: ups1@127.0.0.1:3493: ERR DRIVER-NOT-CONNECTED". A status of
// WAIT (upsd has no data from the driver yet) is an error too: it says
// nothing about mains power.
func (n *NUT) Poll(ctx context.Context) (lost bool, detail string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	lost, detail, err = n.poll(ctx)
	if err != nil {
		err = fmt.Errorf("power: nut: %s@%s: %w", n.opts.UPS, n.addr, err)
	}
	return lost, detail, err
}

func (n *NUT) poll(ctx context.Context) (bool, string, error) {
	reused := n.conn != nil
	line, err := n.request(ctx, n.req)
	if err != nil && reused && ctx.Err() == nil && !isTimeout(err) {
		// upsd may have closed an idle connection or restarted since the
		// last Poll: try once more on a fresh connection. A timeout is not
		// retried, so a silent upsd costs one DialTimeout, not two.
		line, err = n.request(ctx, n.req)
	}
	if err != nil {
		return false, "", err
	}
	status, err := parseVar(line, n.opts.UPS, "ups.status")
	if err != nil {
		if _, ok := errors.AsType[*nutError](err); !ok {
			n.closeLocked() // out of step with upsd
		}
		return false, "", err
	}
	detail := "ups.status " + strconv.Quote(status)
	lost, err := statusLost(status)
	if err != nil {
		return false, "", err
	}
	return lost, detail, nil
}

// request sends one line and reads one line, connecting first if needed.
// On any error but an ERR reply the connection is closed.
func (n *NUT) request(ctx context.Context, req string) (string, error) {
	if n.conn == nil {
		if err := n.connect(ctx); err != nil {
			return "", err
		}
	}
	line, err := n.roundTrip(ctx, req)
	if err != nil {
		n.closeLocked()
		return "", err
	}
	return line, nil
}

func (n *NUT) connect(ctx context.Context) error {
	d := net.Dialer{Timeout: n.opts.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", n.addr)
	if err != nil {
		return err
	}
	n.conn, n.r = conn, bufio.NewReaderSize(conn, 512)
	if n.opts.Username == "" {
		return nil
	}
	for _, req := range []string{
		"USERNAME " + n.opts.Username + "\n",
		"PASSWORD " + quoteNUT(n.opts.Password) + "\n",
	} {
		line, err := n.roundTrip(ctx, req)
		if err == nil && line != "OK" {
			err = replyError(line)
		}
		if err != nil {
			n.closeLocked()
			return fmt.Errorf("%s: %w", strings.Fields(req)[0], err)
		}
	}
	return nil
}

// roundTrip writes req and reads one reply line within DialTimeout; ctx
// ending interrupts it (and then its error is ctx's).
func (n *NUT) roundTrip(ctx context.Context, req string) (string, error) {
	conn := n.conn
	if err := conn.SetDeadline(time.Now().Add(n.opts.DialTimeout)); err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write([]byte(req)); err != nil {
		return "", ctxErr(ctx, err)
	}
	line, err := readLine(n.r)
	if err != nil {
		return "", ctxErr(ctx, err)
	}
	return line, nil
}

// readLine reads one line without its line ending, refusing lines longer
// than maxNUTLine.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, more, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxNUTLine {
			return "", fmt.Errorf("reply longer than %d bytes", maxNUTLine)
		}
		if !more {
			return string(b), nil
		}
	}
}

// ctxErr prefers ctx's error when ctx ending is what broke the request.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

// Close closes the connection to upsd, if any. A later Poll reconnects.
func (n *NUT) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn, n.r = nil, nil
	return err
}

func (n *NUT) closeLocked() {
	if n.conn != nil {
		n.conn.Close()
		n.conn, n.r = nil, nil
	}
}

var _ Source = (*NUT)(nil)
