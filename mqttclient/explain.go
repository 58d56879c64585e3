package mqttclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

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
