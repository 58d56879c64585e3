package bridge

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
	"github.com/doorbridge/doorbridge/mqttclient"
)

// A CONNECT that declares a huge length costs its sender the connection at
// once, before the broker reserves memory for it or checks a password: on
// 43e9a8a, 8 sockets sending 5 bytes each made mochi reserve 4 GB. A
// logged-in client may publish up to MaxPacketSize (far above Home
// Assistant's discovery configs) and loses its connection beyond.
func TestEmbeddedBrokerBoundsPacketSize(t *testing.T) {
	cfg := testConfig("")
	cfg.MQTT.Username, cfg.MQTT.Password = "doorbridge", "bridge-secret-1"
	cfg.EmbeddedBroker = config.EmbeddedBroker{
		Listen: "127.0.0.1:0",
		Users:  []config.BrokerUser{{Username: "doorbridge", PasswordHash: bcryptHash(t, "bridge-secret-1")}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	eb, err := StartEmbeddedBrokerConfig(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eb.Close() })

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const sockets = 8
	conns := make([]net.Conn, sockets)
	for i := range conns {
		c, err := net.Dial("tcp", eb.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// CONNECT, remaining length 268,435,455: the largest MQTT allows.
		if _, err := c.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Errorf("socket %d: a CONNECT declaring 256 MB was not refused at once (%v)", i, err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("the broker allocated %d MB for %d CONNECT headers; want under 32 MB", grew>>20, sockets)
	}

	url := eb.URL()
	o := testbroker.ClientOptions{Username: "doorbridge", Password: "bridge-secret-1"}
	c := testbroker.ConnectWith(t, url, "big", o)
	c.Paho().Subscribe("db/t1/big", 0, nil).WaitTimeout(wait)
	large := strings.Repeat("x", MaxPacketSize-1024)
	c.Publish("db/t1/big", large, false)
	if m := c.WaitFor("db/t1/big", wait, nil); len(m.Payload) != len(large) {
		t.Errorf("a %d-byte message arrived as %d bytes", len(large), len(m.Payload))
	}
	tok := c.Paho().Publish("db/t1/big", 0, false, large+strings.Repeat("x", 2048))
	tok.WaitTimeout(wait)
	testbroker.Eventually(t, wait, func() bool { return c.Lost() > 0 }, "a client publishing beyond MaxPacketSize keeps its connection")
}

// embedded_broker.socket with listen: "": the bridge and its clients
// connect over a Unix socket of mode 0660, so that only the bridge's user
// and group can command a door; another account is refused by the kernel.
func TestEmbeddedBrokerUnixSocketOnly(t *testing.T) {
	dir, err := os.MkdirTemp("", "doorbridge-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the socket's mode alone keeps others out
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "mqtt.sock")
	cfg := testConfig("")
	cfg.EmbeddedBroker = config.EmbeddedBroker{Listen: "", Socket: sock}
	l := runLinked(t, cfg)
	// The socket file appears at bind, before listen and the chmod to
	// 0660 that follows it: wait for the mode, which says both are done.
	testbroker.Eventually(t, wait, func() bool { fi, err := os.Stat(sock); return err == nil && fi.Mode().Perm() == 0o660 },
		"socket %s of mode 0660", sock)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("%s: mode %v, want a socket of mode 0660", sock, fi.Mode())
	}
	c := testbroker.Connect(t, "unix://"+sock, "local-ha")
	c.Publish("db/alarm", "OFF", true)
	l.waitPower("0", true, wait, "the bridge, connected over the socket, obeys the alarm")
	c.Publish("db/t1/fsec/set", "UNLOCK", false)
	l.waitPower("1", true, wait, "a client on the socket commands a door")
	if w := cfg.BrokerWarnings(time.Now()); len(w) != 1 || !strings.Contains(w[0], "every account that may open "+sock) {
		t.Errorf("BrokerWarnings = %q, want the socket's no-login warning", w)
	}

	// Another account (nobody) cannot even connect.
	if os.Geteuid() != 0 {
		t.Skip("connecting as another account needs root")
	}
	py := "/usr/bin/python3" // not a shim under root's home, which nobody cannot read
	if _, err := os.Stat(py); err != nil {
		t.Skip("/usr/bin/python3 not installed")
	}
	cmd := exec.Command(py, "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])", sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("uid 65534 connecting to %s: %v %s; want permission denied", sock, err, out)
	}
}

// The bridge connects to its embedded broker in process (BridgeURL), not
// through a listener any local account can reach: sockets flooding the
// public listener's pending logins from the bridge's own host (loopback)
// do not stand in the way of its login.
func TestEmbeddedBrokerBridgeConnectsInProcess(t *testing.T) {
	eb, err := StartEmbeddedBroker("127.0.0.1:0", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer eb.Close()
	stop := make(chan struct{})
	flooding := make(chan struct{})
	done := make(chan struct{})
	go func() { // idle sockets from loopback, each closing an older one
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if c, err := net.Dial("tcp", eb.Addr()); err == nil {
				held = append(held, c)
			}
			if len(held) > 2*maxPendingLogins {
				held[0].Close()
				held = held[1:]
			}
			if i == 2*maxPendingLogins {
				close(flooding)
			}
		}
	}()
	<-flooding
	cfg := testConfig(eb.BridgeURL())
	for i := range 20 {
		opts, err := mqttclient.Options(cfg, mqttclient.Settings{URLs: []string{eb.BridgeURL()}, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(opts.SetClientID(cfg.ClientID()).SetAutoReconnect(false))
		tok := c.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("login %d over %s during the flood: %v", i, eb.BridgeURL(), tok.Error())
		}
		c.Disconnect(0)
	}
	close(stop)
	<-done
}
