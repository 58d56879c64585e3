package bridge

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// TLS and mutual TLS against a real mosquitto whose certificates the test
// makes: each configuration connects, or is refused with a reason in plain
// words that names the setting to check, logged once however often the
// bridge retries. While refused, the link never counts as up, so the
// fail-safe door stays released.
func TestTLSBrokerLinks(t *testing.T) {
	ca := testbroker.NewPKI(t, "doorbridge test CA")
	stranger := testbroker.NewPKI(t, "some other CA")
	localhost := testbroker.CertOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	serverCert, serverKey := ca.ServerCert("broker")
	expired := localhost
	expired.Name, expired.NotBefore, expired.NotAfter = "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	expiredCert, expiredKey := ca.Issue(expired)
	namedCert, namedKey := ca.Issue(testbroker.CertOptions{Name: "named", DNSNames: []string{"broker.example"}})
	clientCert, clientKey := ca.ClientCert("bridge")
	strangerCert, strangerKey := stranger.ClientCert("intruder")
	oldClientCert, oldClientKey := ca.Issue(testbroker.CertOptions{Name: "old-bridge", Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})

	m := testbroker.StartMosquitto(t, []string{"plain", "tls", "expired", "named", "mtls"}, func(m *testbroker.Mosquitto) string {
		return fmt.Sprintf("allow_anonymous true\npersistence false\nset_tcp_nodelay true\nlistener %d 127.0.0.1\n", m.Port("plain")) +
			testbroker.TLSListener(m.Port("tls"), serverCert, serverKey, "") +
			testbroker.TLSListener(m.Port("expired"), expiredCert, expiredKey, "") +
			testbroker.TLSListener(m.Port("named"), namedCert, namedKey, "") +
			testbroker.TLSListener(m.Port("mtls"), serverCert, serverKey, ca.CAFile)
	})
	watcher := testbroker.Connect(t, "tcp://"+m.Addr("plain"), "watcher")
	watcher.Publish("db/alarm", "OFF", true) // every bridge below shares the default alarm topic

	ssl := func(listener string) string { return "ssl://" + m.Addr(listener) }
	for _, tc := range []struct {
		name   string
		mqtt   config.MQTT
		reason string // "" = connects
	}{
		{name: "tls", mqtt: config.MQTT{URL: ssl("tls"), CAFile: ca.CAFile}},
		{name: "mqtts-scheme", mqtt: config.MQTT{URL: "mqtts://" + m.Addr("tls"), CAFile: ca.CAFile}},
		{name: "mutual-tls", mqtt: config.MQTT{URL: ssl("mtls"), CAFile: ca.CAFile, CertFile: clientCert, KeyFile: clientKey}},
		{name: "server-name", mqtt: config.MQTT{URL: ssl("named"), CAFile: ca.CAFile, ServerName: "broker.example"}},
		{name: "insecure", mqtt: config.MQTT{URL: ssl("named"), InsecureSkipVerify: true}},

		{name: "unknown-ca", mqtt: config.MQTT{URL: ssl("tls"), CAFile: stranger.CAFile},
			reason: "TLS: certificate signed by unknown authority: check mqtt.ca_file"},
		{name: "expired", mqtt: config.MQTT{URL: ssl("expired"), CAFile: ca.CAFile},
			reason: "TLS: the broker's certificate expired at "},
		{name: "wrong-name", mqtt: config.MQTT{URL: ssl("named"), CAFile: ca.CAFile},
			reason: "TLS: the broker's certificate is for broker.example, not 127.0.0.1: check the host in mqtt.url(s), or set mqtt.server_name"},
		{name: "no-client-cert", mqtt: config.MQTT{URL: ssl("mtls"), CAFile: ca.CAFile},
			reason: "TLS: the broker requires a client certificate: set mqtt.cert_file and mqtt.key_file"},
		{name: "client-cert-unknown-ca", mqtt: config.MQTT{URL: ssl("mtls"), CAFile: ca.CAFile, CertFile: strangerCert, KeyFile: strangerKey},
			reason: "TLS: the broker refused our client certificate ("},
		{name: "client-cert-expired", mqtt: config.MQTT{URL: ssl("mtls"), CAFile: ca.CAFile, CertFile: oldClientCert, KeyFile: oldClientKey},
			reason: "TLS: the broker refused our client certificate ("},
		{name: "tls-to-plain-port", mqtt: config.MQTT{URL: ssl("plain"), CAFile: ca.CAFile},
			reason: "TLS: the broker closed the connection during the TLS handshake: is this port a TLS listener"},
		{name: "plain-to-tls-port", mqtt: config.MQTT{URL: "tcp://" + m.Addr("tls")},
			reason: "the broker closed the connection before accepting it (a TLS port needs ssl://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(tc.mqtt.URL)
			cfg.Bridge.ID = strings.ReplaceAll(tc.name, "-", "_")
			tc.mqtt.BaseTopic, tc.mqtt.DiscoveryPrefix = cfg.MQTT.BaseTopic, cfg.MQTT.DiscoveryPrefix
			cfg.MQTT = tc.mqtt
			l := runLinked(t, cfg)
			if tc.reason == "" {
				l.waitPower("0", true, wait, "the fail-safe door locks once the TLS link is proven and the alarm is clear")
				if tc.mqtt.InsecureSkipVerify {
					if n := l.log.count("WARN", "mqtt.insecure_skip_verify is true"); n != 1 {
						t.Errorf("%d warnings about insecure_skip_verify, want 1", n)
					}
				}
				return
			}
			// Three attempts, each failing the same way: one error line.
			l.log.waitCount(t, 3, "DEBUG", "MQTT connection attempt failed")
			if n := l.log.count("ERROR", "MQTT broker unreachable", tc.reason); n != 1 {
				t.Errorf("%d error lines with %q, want exactly 1 (once per distinct error, not per retry)", n, tc.reason)
			}
			if n := l.log.count("ERROR", "MQTT broker unreachable"); n != 1 {
				t.Errorf("%d 'unreachable' error lines, want 1", n)
			}
			if l.power("0") || l.connected() {
				t.Errorf("refused link: fail-safe door powered %v, connected %v; want released and not connected", l.power("0"), l.connected())
			}
		})
	}
}
