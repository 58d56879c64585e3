package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/internal/secretfile"
)

// IsTLSScheme reports whether an MQTT URL scheme means TLS.
func IsTLSScheme(scheme string) bool { return scheme == "ssl" || scheme == "mqtts" }

// BrokerURLs returns the configured brokers in the order they are tried:
// mqtt.urls, or mqtt.url alone. nil means the embedded broker.
func (m *MQTT) BrokerURLs() []string {
	if len(m.URLs) > 0 {
		return slices.Clone(m.URLs)
	}
	if m.URL != "" {
		return []string{m.URL}
	}
	return nil
}

// UsesTLS reports whether the configured brokers are reached over TLS.
// Validation makes sure they all are, or none.
func (m *MQTT) UsesTLS() bool {
	for _, raw := range m.BrokerURLs() {
		if u, err := url.Parse(raw); err == nil && IsTLSScheme(u.Scheme) {
			return true
		}
	}
	return false
}

// TLSConfig builds the client TLS configuration from ca_file, cert_file,
// key_file, server_name and insecure_skip_verify. An error names the key.
func (m *MQTT) TLSConfig() (*tls.Config, error) {
	tc, key, err := m.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return tc, nil
}

func (m *MQTT) tlsConfig() (*tls.Config, string, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         m.ServerName,
		InsecureSkipVerify: m.InsecureSkipVerify,
	}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, "mqtt.ca_file", err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "mqtt.ca_file", fmt.Errorf("%s holds no PEM certificate", m.CAFile)
		}
		tc.RootCAs = pool
	}
	if m.CertFile != "" || m.KeyFile != "" {
		cert, key, err := loadKeyPair("mqtt", m.CertFile, m.KeyFile)
		if err != nil {
			return nil, key, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, "", nil
}

// loadKeyPair loads a certificate and its key; the error's key is
// <section>.cert_file or <section>.key_file, whichever is at fault.
func loadKeyPair(section, certFile, keyFile string) (tls.Certificate, string, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, section + ".cert_file", err
	}
	if err := checkSecretMode(keyFile); err != nil {
		return tls.Certificate{}, section + ".key_file", err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, section + ".key_file", err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	switch {
	case err == nil:
		return cert, "", nil
	case strings.Contains(err.Error(), "certificate input"):
		return cert, section + ".cert_file", fmt.Errorf("%s: %w", certFile, err)
	default:
		return cert, section + ".key_file", fmt.Errorf("%s: %w", keyFile, err)
	}
}

// EmbeddedTLSCertificate loads the embedded broker's TLS listener
// certificate. An error names the key.
func (e *EmbeddedBroker) EmbeddedTLSCertificate() (tls.Certificate, error) {
	cert, key, err := loadKeyPair("embedded_broker", e.CertFile, e.KeyFile)
	if err != nil {
		return cert, fmt.Errorf("%s: %w", key, err)
	}
	return cert, nil
}

// checkSecretMode refuses a secret file that other accounts could read or
// write, as ssh refuses such a private key: every account on the machine
// would hold the password. Readable by the file's group is allowed
// (root:doorbridge 0640 is how an installer shares it with the service).
func checkSecretMode(path string) error { return secretfile.CheckMode(path) }

// readSecret reads a secret from a file, without its trailing newline.
func readSecret(path string) (string, error) { return secretfile.Read(path) }

// Password returns the user's password from password_file ("" when the
// user has a password_hash instead).
func (u *BrokerUser) Password() (string, error) {
	if u.PasswordFile == "" {
		return "", nil
	}
	return readSecret(u.PasswordFile)
}

// User returns the embedded broker's user called name, or nil.
func (e *EmbeddedBroker) User(name string) *BrokerUser {
	for i := range e.Users {
		if e.Users[i].Username == name {
			return &e.Users[i]
		}
	}
	return nil
}

// UserACL returns the acl entry of user name, or nil.
func (e *EmbeddedBroker) UserACL(name string) *BrokerACL {
	for i := range e.ACL {
		if e.ACL[i].Username == name {
			return &e.ACL[i]
		}
	}
	return nil
}

// secretKeys are config keys whose values never appear in messages.
var secretKeys = []string{"password", "password_hash", "console_password_hash"}

// isSecretKey reports whether a config key ("mqtt.password") holds a secret.
func isSecretKey(key string) bool {
	leaf := key[strings.LastIndex(key, ".")+1:]
	return slices.Contains(secretKeys, leaf)
}

// hiddenValue stands in for a secret in error messages.
type hiddenValue struct{}

func (hiddenValue) String() string { return "(value hidden: it is a secret)" }

// redactURL hides the user information of a URL that may not even parse.
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	if at := strings.LastIndex(host, "@"); at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return raw
}

func (c *Config) validateMQTT(v *validator) {
	m := &c.MQTT
	type entry struct{ key, url string }
	var urls []entry
	switch {
	case m.URL != "" && len(m.URLs) > 0:
		v.add("mqtt.urls", "set url or urls, not both")
	case len(m.URLs) > 0:
		for i, u := range m.URLs {
			urls = append(urls, entry{fmt.Sprintf("mqtt.urls[%d]", i), u})
		}
	case m.URL != "":
		urls = append(urls, entry{"mqtt.url", m.URL})
	}
	embedded := m.URL == "" && len(m.URLs) == 0
	var tlsURLs, plainURLs int
	seen := map[string]string{}
	for _, e := range urls {
		scheme, ok := v.brokerURL(e.key, e.url)
		if !ok {
			continue
		}
		if other, dup := seen[e.url]; dup {
			v.add(e.key, "%q is listed twice (also %s)", redactURL(e.url), other)
		}
		seen[e.url] = e.key
		if IsTLSScheme(scheme) {
			tlsURLs++
		} else {
			plainURLs++
		}
	}
	if tlsURLs > 0 && plainURLs > 0 {
		v.add("mqtt.urls", "mixes TLS (ssl://, mqtts://) and plain (tcp://, mqtt://) brokers; use TLS for all of them or none, so that a failover never downgrades the link")
	}
	c.validateMQTTTLS(v, embedded, tlsURLs > 0)
	if m.Password != "" && m.PasswordFile != "" {
		v.add("mqtt.password_file", "set password or password_file, not both")
	}
	if embedded {
		c.validateEmbeddedBroker(v)
	}
	v.publishTopic("mqtt.base_topic", m.BaseTopic)
	v.publishTopic("mqtt.discovery_prefix", m.DiscoveryPrefix)
	if m.BirthTopic != "" { // empty: DefaultBirthTopic
		v.publishTopic("mqtt.birth_topic", m.BirthTopic)
	}
}

// brokerURL checks one broker URL and returns its scheme.
func (v *validator) brokerURL(key, raw string) (string, bool) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, credentials and all
		}
		v.add(key, "%q is not a URL: %v", redactURL(raw), err)
	case u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "mqtt" && u.Scheme != "mqtts":
		v.add(key, "%q: scheme must be tcp://, mqtt://, ssl:// or mqtts:// (or leave mqtt.url empty for the embedded broker)", u.Redacted())
	case u.User != nil:
		v.add(key, "%q holds credentials; put them in mqtt.username and mqtt.password_file instead (URLs end up in logs)", u.Redacted())
	case u.Hostname() == "":
		v.add(key, "%q has no host (e.g. tcp://192.168.1.10:1883)", raw)
	case u.Port() == "":
		// paho dials the host as written and has no default port.
		v.add(key, "%q has no port (e.g. %s://%s:1883, or :8883 for TLS)", raw, u.Scheme, u.Hostname())
	default:
		return u.Scheme, true
	}
	return "", false
}

func (c *Config) validateMQTTTLS(v *validator, embedded, usesTLS bool) {
	m := &c.MQTT
	set := []struct {
		key string
		on  bool
	}{
		{"mqtt.ca_file", m.CAFile != ""},
		{"mqtt.cert_file", m.CertFile != ""},
		{"mqtt.key_file", m.KeyFile != ""},
		{"mqtt.server_name", m.ServerName != ""},
		{"mqtt.insecure_skip_verify", m.InsecureSkipVerify},
	}
	if !usesTLS {
		for _, s := range set {
			switch {
			case !s.on:
			case embedded:
				v.add(s.key, "is set, but the bridge reaches its embedded broker over loopback without TLS; remove it (or set mqtt.url to an ssl:// broker)")
			default:
				v.add(s.key, "is set, but no broker URL uses ssl:// or mqtts://; it would be ignored")
			}
		}
		return
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		if m.CertFile == "" {
			v.add("mqtt.cert_file", "must be set with mqtt.key_file (mutual TLS needs the client certificate and its key)")
		} else {
			v.add("mqtt.key_file", "must be set with mqtt.cert_file (mutual TLS needs the client certificate and its key)")
		}
	}
}

func (c *Config) validateEmbeddedBroker(v *validator) {
	e := &c.EmbeddedBroker
	auth := len(e.Users) > 0
	switch {
	case e.Listen != "":
		v.listenAddr("embedded_broker.listen", e.Listen, auth)
	case e.Socket == "":
		v.add("embedded_broker.listen", "is empty and embedded_broker.socket is not set: the broker would have no listener (e.g. 127.0.0.1:1883)")
	}
	if e.Socket != "" && !filepath.IsAbs(e.Socket) {
		v.add("embedded_broker.socket", "%q is not an absolute path (e.g. /run/doorbridge/mqtt.sock)", e.Socket)
	}
	switch {
	case e.TLSListen != "":
		v.listenAddr("embedded_broker.tls_listen", e.TLSListen, auth)
		switch {
		case e.CertFile == "":
			v.add("embedded_broker.cert_file", "must be set with embedded_broker.tls_listen (the broker's certificate)")
		case e.KeyFile == "":
			v.add("embedded_broker.key_file", "must be set with embedded_broker.tls_listen (the certificate's private key)")
		}
	case e.CertFile != "" || e.KeyFile != "":
		key := "embedded_broker.cert_file"
		if e.CertFile == "" {
			key = "embedded_broker.key_file"
		}
		v.add(key, "is set, but embedded_broker.tls_listen is empty; set tls_listen to serve TLS")
	}
	c.validateBrokerUsers(v)
}

// listenAddr checks a listen address of the embedded broker: anything
// beyond loopback needs authentication.
func (v *validator) listenAddr(key, addr string, auth bool) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		v.add(key, "%q is not host:port (e.g. 127.0.0.1:1883)", addr)
	} else if !auth && !isLoopbackListen(addr) {
		v.add(key, "%q is not a loopback address: add embedded_broker.users and an acl to listen beyond loopback (without users the embedded broker has no authentication)", addr)
	}
}

// isLoopbackListen reports whether addr (host:port) listens on loopback only.
// The host must be a loopback IP or "localhost": a name such as
// "127.example.com" may resolve anywhere.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateBrokerUsers(v *validator) {
	e := &c.EmbeddedBroker
	names := map[string]bool{}
	for i, u := range e.Users {
		key := fmt.Sprintf("embedded_broker.users[%d]", i)
		switch {
		case u.Username == "":
			v.add(key+".username", "must not be empty")
		case names[u.Username]:
			v.add(key+".username", "duplicate user %q", u.Username)
		}
		names[u.Username] = true
		switch {
		case u.PasswordHash != "" && u.PasswordFile != "":
			v.add(key+".password_file", "set password_hash or password_file, not both")
		case u.PasswordHash != "":
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				v.add(key+".password_hash", "is not a bcrypt hash (make one with: doorbridge hash-password)")
			}
		case u.PasswordFile != "":
		default:
			v.add(key+".password_hash", "set password_hash (bcrypt) or password_file: a user without a password could not log in")
		}
	}
	if len(e.Users) == 0 {
		if len(e.ACL) > 0 {
			v.add("embedded_broker.acl", "needs embedded_broker.users: without users there are no logins to apply it to")
		}
		return
	}
	bridgeUser := c.MQTT.Username
	switch {
	case bridgeUser == "":
		v.add("mqtt.username", "must name one of embedded_broker.users: the bridge logs in to its own broker too")
	case !names[bridgeUser]:
		v.add("mqtt.username", "%q is not in embedded_broker.users: the bridge logs in to its own broker as mqtt.username", bridgeUser)
	case c.MQTT.Password == "" && c.MQTT.PasswordFile == "":
		v.add("mqtt.password_file", "must be set (or mqtt.password): the bridge logs in to its embedded broker as %q", bridgeUser)
	}
	hasACL := map[string]bool{}
	for i, a := range e.ACL {
		key := fmt.Sprintf("embedded_broker.acl[%d]", i)
		switch {
		case !names[a.Username]:
			v.add(key+".username", "%q is not in embedded_broker.users", a.Username)
		case hasACL[a.Username]:
			v.add(key+".username", "user %q has two acl entries; merge them", a.Username)
		}
		hasACL[a.Username] = true
		for j, f := range a.Publish {
			if !ValidFilter(f) {
				v.add(fmt.Sprintf("%s.publish[%d]", key, j), "%q is not a topic pattern (+ stands for one whole level, # for the rest and only at the end)", f)
			}
		}
		for j, f := range a.Subscribe {
			if !ValidFilter(f) {
				v.add(fmt.Sprintf("%s.subscribe[%d]", key, j), "%q is not a topic pattern (+ stands for one whole level, # for the rest and only at the end)", f)
			}
		}
	}
	for i, u := range e.Users {
		if u.Username != "" && u.Username != bridgeUser && !hasACL[u.Username] {
			v.add(fmt.Sprintf("embedded_broker.users[%d].username", i), "user %q has no entry in embedded_broker.acl: it could neither publish nor subscribe", u.Username)
		}
	}
}

// CheckFiles reads every file the config names for secrets and TLS
// (password files, the CA bundle, certificates and keys) and returns an
// *Error, naming the key, for each that cannot be used, joined with
// errors.Join. Load does not call it, since a config may be checked on one
// machine and its files exist only on another; the run and check-config
// commands do.
func (c *Config) CheckFiles() error {
	v := &validator{file: c.File}
	if v.file == "" {
		v.file = "config"
	}
	m := &c.MQTT
	if m.PasswordFile != "" {
		if _, err := readSecret(m.PasswordFile); err != nil {
			v.add("mqtt.password_file", "%v", err)
		}
	}
	if m.UsesTLS() {
		if _, key, err := m.tlsConfig(); err != nil {
			v.add(key, "%v", err)
		}
	}
	if m.URL == "" && len(m.URLs) == 0 {
		e := &c.EmbeddedBroker
		if e.TLSListen != "" && e.CertFile != "" && e.KeyFile != "" {
			if _, key, err := loadKeyPair("embedded_broker", e.CertFile, e.KeyFile); err != nil {
				v.add(key, "%v", err)
			}
		}
		for i, u := range e.Users {
			if u.PasswordFile != "" {
				if _, err := readSecret(u.PasswordFile); err != nil {
					v.add(fmt.Sprintf("embedded_broker.users[%d].password_file", i), "%v", err)
				}
			}
		}
	}
	c.HTTP.checkFiles(v)
	for i, p := range c.Power {
		if p.PasswordFile != "" {
			if _, err := readSecret(p.PasswordFile); err != nil {
				v.add(fmt.Sprintf("power[%d].password_file", i), "%v", err)
			}
		}
	}
	return errors.Join(v.errs...)
}

// ValidFilter reports whether f is a valid MQTT topic filter.
func ValidFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return false
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return false
		}
	}
	return true
}

// NoLoginWarning is logged at every start, and printed by check-config,
// while the embedded broker has no users: loopback is not a boundary
// between the accounts of one machine.
const NoLoginWarning = "embedded_broker has no users, so no login: any program or account on this machine (and any container on the host's network) can unlock every door, raise or clear the fire alarm and lock down; add embedded_broker.users and an acl (logins are then required on loopback too) so that only those who hold a password can, or serve this machine's trusted accounts only on embedded_broker.socket (with listen: \"\")"

// BrokerWarnings lists what is valid in the mqtt and embedded_broker
// sections but deserves the installer's attention. check-config prints
// them; the bridge logs them at start.
func (c *Config) BrokerWarnings(now time.Time) []string {
	out := slices.Clone(c.envWarnings)
	m := &c.MQTT
	if m.Password != "" && m.PasswordFile == "" && c.File != "" {
		// The config file holds a secret then, as a password_file would.
		if err := checkSecretMode(c.File); err != nil {
			out = append(out, "mqtt.password is set in the config file, and "+err.Error()+"; or move the password to mqtt.password_file")
		}
	}
	if m.InsecureSkipVerify {
		out = append(out, "mqtt.insecure_skip_verify is true: the broker's certificate is NOT checked, so anyone on the network path can pose as the broker, read every door state and unlock doors; set mqtt.ca_file instead")
	}
	if m.CertFile != "" && m.KeyFile != "" && m.UsesTLS() {
		if cert, _, err := loadKeyPair("mqtt", m.CertFile, m.KeyFile); err == nil && len(cert.Certificate) > 0 {
			if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
				switch {
				case now.After(leaf.NotAfter):
					out = append(out, fmt.Sprintf("mqtt.cert_file: the client certificate expired on %s; the broker will refuse it", leaf.NotAfter.Format(time.DateOnly)))
				case now.Add(30 * 24 * time.Hour).After(leaf.NotAfter):
					out = append(out, fmt.Sprintf("mqtt.cert_file: the client certificate expires on %s; renew it", leaf.NotAfter.Format(time.DateOnly)))
				}
			}
		}
	}
	if m.URL == "" && len(m.URLs) == 0 {
		e := &c.EmbeddedBroker
		switch {
		case len(e.Users) == 0 && e.Listen != "":
			out = append(out, NoLoginWarning)
		case len(e.Users) == 0:
			out = append(out, fmt.Sprintf("embedded_broker has no users, so no login: every account that may open %s (the bridge's user and group: mode 0660) can unlock every door; add embedded_broker.users and an acl to require a password", e.Socket))
		}
		if len(e.Users) > 0 && e.Listen != "" && !isLoopbackListen(e.Listen) {
			out = append(out, fmt.Sprintf("embedded_broker.listen %q is not loopback: passwords cross the network in clear text; keep listen on 127.0.0.1 and serve the LAN with tls_listen", e.Listen))
		}
	}
	return out
}

// DefaultBirthTopic is Home Assistant's default MQTT birth topic.
const DefaultBirthTopic = "homeassistant/status"

// HABirthTopic is mqtt.birth_topic, or DefaultBirthTopic when empty.
func (m *MQTT) HABirthTopic() string {
	if m.BirthTopic == "" {
		return DefaultBirthTopic
	}
	return m.BirthTopic
}
