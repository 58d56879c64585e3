package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

const sim = `
drivers: [{id: sim, type: sim}]
doors: [{id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`

// A file the config names but that cannot be used is refused by
// CheckFiles, with the key; Load alone does not read files.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	pki := testbroker.NewPKI(t, "test CA")
	cert, key := pki.ClientCert("bridge")
	_, otherKey := pki.ClientCert("other")
	empty := filepath.Join(dir, "empty")
	notPEM := filepath.Join(dir, "not-pem")
	os.WriteFile(empty, []byte("\n"), 0o600)
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	missing := filepath.Join(dir, "missing")
	worldReadable := filepath.Join(dir, "world-readable")
	groupWritable := filepath.Join(dir, "group-writable")
	os.WriteFile(worldReadable, []byte("pw\n"), 0o600)
	os.WriteFile(groupWritable, []byte("pw\n"), 0o600)
	os.Chmod(worldReadable, 0o644) // past the umask
	os.Chmod(groupWritable, 0o660)
	keyCopy := filepath.Join(dir, "key-world-readable")
	keyPEM, _ := os.ReadFile(key)
	os.WriteFile(keyCopy, keyPEM, 0o600)
	os.Chmod(keyCopy, 0o604)

	for _, tc := range []struct{ name, yaml, want string }{
		{"password file missing", "mqtt: {url: tcp://h:1883, password_file: " + missing + "}",
			"mqtt.password_file: open " + missing + ": no such file or directory"},
		{"password file empty", "mqtt: {url: tcp://h:1883, password_file: " + empty + "}",
			"mqtt.password_file: " + empty + " is empty"},
		{"password file world-readable", "mqtt: {url: tcp://h:1883, password_file: " + worldReadable + "}",
			"mqtt.password_file: " + worldReadable + " is readable by every account on this machine (mode 0644); make it 0600, owned by the service's user (or 0640 with its group): chmod 0600 " + worldReadable},
		{"password file group-writable", "mqtt: {url: tcp://h:1883, password_file: " + groupWritable + "}",
			"mqtt.password_file: " + groupWritable + " is writable by its group (mode 0660); make it 0600, owned by the service's user (or 0640 with its group): chmod 0600 " + groupWritable},
		{"embedded user password file world-readable", "mqtt: {username: b, password: x}\nembedded_broker: {users: [{username: b, password_file: " + worldReadable + "}]}",
			"embedded_broker.users[0].password_file: " + worldReadable + " is readable by every account on this machine (mode 0644); make it 0600, owned by the service's user (or 0640 with its group): chmod 0600 " + worldReadable},
		{"key file world-readable", "mqtt: {url: ssl://h:8883, cert_file: " + cert + ", key_file: " + keyCopy + "}",
			"mqtt.key_file: " + keyCopy + " is readable by every account on this machine (mode 0604); make it 0600, owned by the service's user (or 0640 with its group): chmod 0600 " + keyCopy},
		{"ca file missing", "mqtt: {url: ssl://h:8883, ca_file: " + missing + "}",
			"mqtt.ca_file: open " + missing + ": no such file or directory"},
		{"ca file not PEM", "mqtt: {url: ssl://h:8883, ca_file: " + notPEM + "}",
			"mqtt.ca_file: " + notPEM + " holds no PEM certificate"},
		{"cert file missing", "mqtt: {url: ssl://h:8883, cert_file: " + missing + ", key_file: " + key + "}",
			"mqtt.cert_file: open " + missing + ": no such file or directory"},
		{"key file missing", "mqtt: {url: ssl://h:8883, cert_file: " + cert + ", key_file: " + missing + "}",
			"mqtt.key_file: open " + missing + ": no such file or directory"},
		{"key of another certificate", "mqtt: {url: ssl://h:8883, cert_file: " + cert + ", key_file: " + otherKey + "}",
			"mqtt.key_file: " + otherKey + ": tls: private key does not match public key"},
		{"cert file not PEM", "mqtt: {url: ssl://h:8883, cert_file: " + notPEM + ", key_file: " + key + "}",
			"mqtt.cert_file: " + notPEM + ": tls: failed to find any PEM data in certificate input"},
		{"embedded user password file", "mqtt: {username: b, password: x}\nembedded_broker: {users: [{username: b, password_file: " + missing + "}]}",
			"embedded_broker.users[0].password_file: open " + missing + ": no such file or directory"},
		{"embedded tls key", "embedded_broker: {tls_listen: \"127.0.0.1:8883\", cert_file: " + cert + ", key_file: " + missing + "}",
			"embedded_broker.key_file: open " + missing + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("c.yaml", []byte(tc.yaml+sim))
			if err != nil {
				t.Fatalf("Parse: %v (files are not read by Load)", err)
			}
			err = cfg.CheckFiles()
			if want := "c.yaml: " + tc.want; err == nil || err.Error() != want {
				t.Errorf("CheckFiles:\n got: %v\nwant: %s", err, want)
			}
		})
	}

	// Good files pass, and the TLS configuration holds them.
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	cfg, err := config.Parse("c.yaml", []byte("mqtt: {urls: [ssl://a:8883, mqtts://b:8883], ca_file: "+pki.CAFile+", cert_file: "+cert+", key_file: "+key+", password_file: "+pw+", server_name: broker.lan}"+sim))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.MQTT.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "broker.lan" || tc.InsecureSkipVerify {
		t.Errorf("TLSConfig = roots %v, %d certificates, server name %q, insecure %v", tc.RootCAs != nil, len(tc.Certificates), tc.ServerName, tc.InsecureSkipVerify)
	}
	if pw, err := cfg.MQTTPassword(); err != nil || pw != "secret" {
		t.Errorf("MQTTPassword() = %q, %v", pw, err)
	}
	if got := cfg.MQTT.BrokerURLs(); !slices.Equal(got, []string{"ssl://a:8883", "mqtts://b:8883"}) || !cfg.MQTT.UsesTLS() {
		t.Errorf("BrokerURLs() = %q, UsesTLS() = %v", got, cfg.MQTT.UsesTLS())
	}
}

// The embedded broker may listen beyond loopback once it has users and an
// acl; the bridge's own user needs no acl entry (it gets the bridge's).
func TestEmbeddedBrokerWithUsers(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte(`
mqtt: {username: doorbridge, password: bridge-pw}
embedded_broker:
  listen: "0.0.0.0:1883"
  tls_listen: ":8883"
  cert_file: /etc/doorbridge/broker.pem
  key_file: /etc/doorbridge/broker.key
  users:
    - {username: doorbridge, password_hash: "$2a$04$bKM9rKo7Oz.qbGv9qjnadO.mgRcqs8uMLfhj9fWdrz0onwARNcgH."}
    - {username: homeassistant, password_file: /run/secrets/ha}
  acl:
    - {username: homeassistant, publish: ["doorbridge/+/+/set", "doorbridge/alarm"], subscribe: ["doorbridge/#", "homeassistant/#"]}
`+sim))
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.EmbeddedBroker.User("homeassistant"); u == nil || u.PasswordFile != "/run/secrets/ha" {
		t.Errorf("User(homeassistant) = %+v", u)
	}
	if a := cfg.EmbeddedBroker.UserACL("homeassistant"); a == nil || len(a.Publish) != 2 || len(a.Subscribe) != 2 {
		t.Errorf("UserACL(homeassistant) = %+v", a)
	}
	warnings := cfg.BrokerWarnings(time.Now())
	if len(warnings) != 1 || !strings.Contains(warnings[0], `embedded_broker.listen "0.0.0.0:1883" is not loopback: passwords cross the network in clear text`) {
		t.Errorf("BrokerWarnings = %q, want one about the clear-text listener", warnings)
	}
}

func TestBrokerWarnings(t *testing.T) {
	pki := testbroker.NewPKI(t, "test CA")
	old, oldKey := pki.Issue(testbroker.CertOptions{Name: "old", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	soon, soonKey := pki.ClientCert("soon") // valid for a day
	for _, tc := range []struct{ yaml, want string }{
		{"mqtt: {url: ssl://h:8883, insecure_skip_verify: true}", "mqtt.insecure_skip_verify is true: the broker's certificate is NOT checked"},
		{"mqtt: {url: ssl://h:8883, cert_file: " + old + ", key_file: " + oldKey + "}", "mqtt.cert_file: the client certificate expired on "},
		{"mqtt: {url: ssl://h:8883, cert_file: " + soon + ", key_file: " + soonKey + "}", "mqtt.cert_file: the client certificate expires on "},
	} {
		cfg, err := config.Parse("c.yaml", []byte(tc.yaml+sim))
		if err != nil {
			t.Fatal(err)
		}
		if w := cfg.BrokerWarnings(time.Now()); len(w) != 1 || !strings.HasPrefix(w[0], tc.want) {
			t.Errorf("%s: BrokerWarnings = %q, want one starting %q", tc.yaml, w, tc.want)
		}
	}
	// The embedded broker without users: said at every start (the bridge
	// logs BrokerWarnings) and by check-config.
	cfg, err := config.Parse("c.yaml", []byte(sim))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.BrokerWarnings(time.Now()); len(w) != 1 || w[0] != config.NoLoginWarning {
		t.Errorf("BrokerWarnings for the embedded broker without users = %q, want the no-login warning", w)
	}
	cfg, err = config.Parse("c.yaml", []byte("mqtt: {url: tcp://h:1883}"+sim))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.BrokerWarnings(time.Now()); len(w) != 0 {
		t.Errorf("BrokerWarnings for a plain broker = %q, want none", w)
	}
}

func TestValidFilter(t *testing.T) {
	for f, want := range map[string]bool{
		"a/b": true, "a/+/c": true, "a/#": true, "#": true, "+": true,
		"": false, "a/#/c": false, "a/b+": false, "a#": false,
	} {
		if got := config.ValidFilter(f); got != want {
			t.Errorf("ValidFilter(%q) = %v, want %v", f, got, want)
		}
	}
}

// An inline mqtt.password makes the config file a secret: a file other
// accounts can read is warned about (at start and by check-config), as a
// password_file in that mode would be refused; 0600 or 0640 is fine.
func TestBrokerWarningsInlinePasswordFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorbridge.yaml")
	if err := os.WriteFile(path, []byte("mqtt: {url: tcp://h:1883, username: u, password: secret-9}"+sim), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.BrokerWarnings(time.Now())
	if len(w) != 1 || !strings.HasPrefix(w[0], "mqtt.password is set in the config file, and "+path+" is readable by every account") {
		t.Errorf("config file 0644 with mqtt.password: BrokerWarnings = %q", w)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if w := cfg.BrokerWarnings(time.Now()); len(w) != 0 {
		t.Errorf("config file 0640: BrokerWarnings = %q, want none", w)
	}
}
