package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen opens a notification socket the test owns, like systemd's.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@doorbridge-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano()), // abstract
	} {
		c := listen(t, name)
		n, err := New(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Notify(Ready, Status("running\nfine")); err != nil {
			t.Fatal(err)
		}
		if got, want := recv(t, c), "READY=1\nSTATUS=running fine"; got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
		if err := n.Notify(Watchdog); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Errorf("%s: got %q", name, got)
		}
	}
}

func TestNilNotifierSendsNothing(t *testing.T) {
	var n *Notifier
	if err := n.Notify(Ready); err != nil || n.WatchdogInterval() != 0 {
		t.Fatalf("nil notifier: %v, %v", err, n.WatchdogInterval())
	}
}

func TestNotifyWithoutListener(t *testing.T) {
	n, _ := New(filepath.Join(t.TempDir(), "none"), 0)
	if err := n.Notify(Ready); err == nil {
		t.Fatalf("Notify to a missing socket succeeded")
	}
}

func TestFromEnv(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	pid := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		socket, usec, pid string
		nilNotifier       bool
		watchdog          time.Duration
		err               bool
	}{
		{socket: "", nilNotifier: true},
		{socket: sock, watchdog: 0},
		{socket: sock, usec: "3000000", watchdog: 3 * time.Second},
		{socket: sock, usec: "3000000", pid: pid, watchdog: 3 * time.Second},
		{socket: sock, usec: "3000000", pid: "1", watchdog: 0}, // another process's watchdog
		{socket: sock, usec: "soon", err: true},
		{socket: sock, usec: "0", err: true},
		{socket: "vsock:2:1234", err: true},
		{socket: "relative/path", err: true},
	} {
		t.Setenv("NOTIFY_SOCKET", c.socket)
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		n, err := FromEnv()
		switch {
		case c.err:
			if err == nil {
				t.Errorf("%+v: no error", c)
			}
		case err != nil:
			t.Errorf("%+v: %v", c, err)
		case (n == nil) != c.nilNotifier:
			t.Errorf("%+v: notifier %v", c, n)
		case n.WatchdogInterval() != c.watchdog:
			t.Errorf("%+v: watchdog %v, want %v", c, n.WatchdogInterval(), c.watchdog)
		}
	}
}
