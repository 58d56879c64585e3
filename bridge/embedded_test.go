package bridge

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

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
