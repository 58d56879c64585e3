package testbroker

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
)

// A mosquitto with a password file and a TLS listener made from the PKI's
// certificates: a client with the CA and a password gets in, over TLS;
// one without a password, or without the CA, does not.
func TestMosquittoWithTLSAndPasswords(t *testing.T) {
	pki := NewPKI(t, "test CA")
	cert, key := pki.ServerCert("server")
	m := StartMosquitto(t, []string{"plain", "tls"}, func(m *Mosquitto) string {
		return fmt.Sprintf("allow_anonymous false\npassword_file %s\npersistence false\nlistener %d 127.0.0.1\n",
			PasswordFile(t, m.Dir(), map[string]string{"alice": "alice-pw"}), m.Port("plain")) +
			TLSListener(m.Port("tls"), cert, key, "")
	})
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(pki.CAFile)
	if err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file: %v", err)
	}
	tlsURL := "ssl://" + m.Addr("tls")
	c := ConnectWith(t, tlsURL, "alice", ClientOptions{Username: "alice", Password: "alice-pw", TLS: &tls.Config{RootCAs: roots}})
	c.Publish("a/b", "hello", false)
	c.WaitPayload("a/b", "hello", ConnectTimeout)

	if err := TryConnect("tcp://"+m.Addr("plain"), "anon", ClientOptions{}); err == nil {
		t.Error("anonymous client connected, want refused")
	}
	if err := TryConnect(tlsURL, "no-ca", ClientOptions{Username: "alice", Password: "alice-pw", TLS: &tls.Config{}}); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("client without the CA: %v, want a certificate error", err)
	}
	m.Kill()
	if err := TryConnect(tlsURL, "late", ClientOptions{Username: "alice", Password: "alice-pw", TLS: &tls.Config{RootCAs: roots}}); err == nil {
		t.Error("connected to a killed mosquitto")
	}
}
