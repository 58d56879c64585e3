package testbroker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for TLS tests. It writes every certificate and key
// as PEM files into a temporary directory of its own.
type PKI struct {
	t    testing.TB
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CAFile is the CA certificate, PEM: what clients (mqtt.ca_file) and brokers (cafile)
	// verify against.
	CAFile string
}

// serial numbers certificates; unique across every PKI of the test binary.
var serial atomic.Int64

// NewPKI creates a CA whose common name is name.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testbroker: CA %q: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testbroker: CA %q: %v", name, err)
	}
	p := &PKI{t: t, dir: t.TempDir(), cert: cert, key: key}
	p.CAFile = p.write("ca.pem", "CERTIFICATE", der)
	return p
}

// CertOptions describe a certificate for PKI.Issue.
type CertOptions struct {
	// Name is the common name, and the stem of the file names.
	Name string
	// DNSNames and IPs are the names a server certificate is valid for.
	DNSNames []string
	IPs      []net.IP
	// Client makes a client certificate (for mutual TLS) instead of a server one.
	Client bool
	// NotBefore and NotAfter bound the validity; zero means an hour ago and a day from now.
	NotBefore, NotAfter time.Time
}

// Issue issues a certificate signed by the CA and returns the paths of its certificate and key
// files.
func (p *PKI) Issue(o CertOptions) (certFile, keyFile string) {
	p.t.Helper()
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	key := newKey(p.t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: o.Name},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		DNSNames:     o.DNSNames,
		IPAddresses:  o.IPs,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatalf("testbroker: certificate %q: %v", o.Name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatalf("testbroker: key of %q: %v", o.Name, err)
	}
	return p.write(o.Name+".pem", "CERTIFICATE", der), p.write(o.Name+".key", "PRIVATE KEY", keyDER)
}

// ServerCert issues a server certificate for localhost and 127.0.0.1, valid now.
func (p *PKI) ServerCert(name string) (certFile, keyFile string) {
	p.t.Helper()
	return p.Issue(CertOptions{Name: name, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

// ClientCert issues a client certificate, valid now.
func (p *PKI) ClientCert(name string) (certFile, keyFile string) {
	p.t.Helper()
	return p.Issue(CertOptions{Name: name, Client: true})
}

func (p *PKI) write(name, typ string, der []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	mode := os.FileMode(0o644)
	if strings.Contains(typ, "PRIVATE KEY") {
		mode = 0o600 // doorbridge refuses a key other accounts can read
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		p.t.Fatalf("testbroker: %v", err)
	}
	return path
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testbroker: key: %v", err)
	}
	return key
}
