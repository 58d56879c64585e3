// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)) without cgo: one datagram of newline-separated
// VARIABLE=value assignments to the unix socket named by $NOTIFY_SOCKET.
//
// doorbridge sends READY=1 once it is in control of the relays, STOPPING=1
// when it begins to shut down, and WATCHDOG=1 only from its control loop
// (see bridge/liveness.go), so that systemd's WatchdogSec= restarts a bridge
// whose loop is stuck even if every other goroutine still runs.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// States understood by systemd.
const (
	Ready    = "READY=1"    // start-up finished (Type=notify)
	Stopping = "STOPPING=1" // shutting down
	Watchdog = "WATCHDOG=1" // keep-alive ping for WatchdogSec=
)

// Status returns a STATUS= assignment: a line shown by systemctl status.
func Status(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}

// sendTimeout bounds one notification: the control loop sends them, and it
// must never wait long on the service manager.
const sendTimeout = 100 * time.Millisecond

// Notifier sends notifications to one socket. A nil *Notifier is valid and
// sends nothing (the process was not started by systemd with Type=notify).
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// New returns a notifier for socket, a path or an abstract name starting
// with @, and the watchdog interval the service manager expects pings in
// (WatchdogSec; 0 for none).
func New(socket string, watchdog time.Duration) (*Notifier, error) {
	if socket == "" || (socket[0] != '/' && socket[0] != '@') {
		return nil, fmt.Errorf("sdnotify: unsupported NOTIFY_SOCKET %q (want a path or @abstract name)", socket)
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}, watchdog: watchdog}, nil
}

// FromEnv returns the notifier systemd asked for in $NOTIFY_SOCKET, with
// the watchdog interval of $WATCHDOG_USEC when $WATCHDOG_PID is unset or
// names this process (sd_watchdog_enabled(3)). It returns nil, nil when
// $NOTIFY_SOCKET is unset.
func FromEnv() (*Notifier, error) {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil, nil
	}
	wd, err := watchdogFromEnv()
	if err != nil {
		return nil, err
	}
	return New(socket, wd)
}

func watchdogFromEnv() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil // meant for another process
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// WatchdogInterval is the WatchdogSec= interval; systemd wants a ping at
// least this often (send one every half of it). 0: no watchdog.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Notify sends the states (Ready, Status("..."), ...) in one datagram. A
// fresh socket per call, as libsystemd does: it survives a restart of the
// service manager.
func (n *Notifier) Notify(states ...string) error {
	if n == nil {
		return nil
	}
	if len(states) == 0 {
		return errors.New("sdnotify: nothing to send")
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}
