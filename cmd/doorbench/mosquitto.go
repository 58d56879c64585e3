package main

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// mosquittoConf is the stock broker's whole config: loopback only and
// anonymous clients, nothing else. Every other setting is mosquitto's
// default, as in Debian's package, the Home Assistant add-on and the
// eclipse-mosquitto image (persistence and set_tcp_nodelay are off).
const mosquittoConf = "listener %d 127.0.0.1\nallow_anonymous true\n"

// nodelayConf is added for the tuned broker: Nagle off on its sockets.
const nodelayConf = "set_tcp_nodelay true\n"

// startMosquitto starts a stock mosquitto (tuned with set_tcp_nodelay when
// nodelay) on a free loopback port, its config and log in dir. Its Restart
// starts a fresh broker (no retained messages) on the same port.
func startMosquitto(bin, dir string, nodelay bool) (*testbroker.Mosquitto, error) {
	return testbroker.LaunchMosquitto(bin, dir, []string{"mqtt"}, func(m *testbroker.Mosquitto) string {
		conf := fmt.Sprintf(mosquittoConf, m.Port("mqtt"))
		if nodelay {
			conf += nodelayConf
		}
		return conf
	})
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)), nil
}

// mosquittoVersion returns the first line of `mosquitto -h`.
func mosquittoVersion(bin string) string {
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	for i, c := range out {
		if c == '\n' {
			return string(out[:i])
		}
	}
	return string(out)
}
