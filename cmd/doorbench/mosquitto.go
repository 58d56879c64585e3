package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// mosquittoConf is the stock broker's whole config: loopback only and
// anonymous clients, nothing else. Every other setting is mosquitto's
// default, as in Debian's package, the Home Assistant add-on and the
// eclipse-mosquitto image (persistence and set_tcp_nodelay are off).
const mosquittoConf = "listener %d 127.0.0.1\nallow_anonymous true\n"

// nodelayConf is added for the tuned broker: Nagle off on its sockets.
const nodelayConf = "set_tcp_nodelay true\n"

// mosquitto is a mosquitto process on a fixed loopback port that can be
// killed and restarted on the same port.
type mosquitto struct {
	bin     string
	nodelay bool // set_tcp_nodelay true (a tuned broker)
	dir     string
	port    int
	cmd     *exec.Cmd
	exit    chan struct{}
}

func startMosquitto(bin, dir string, nodelay bool) (*mosquitto, error) {
	var errs []error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &mosquitto{bin: bin, nodelay: nodelay, dir: dir, port: port}
		if err := m.start(time.Now().Add(10 * time.Second)); err == nil {
			return m, nil
		} else {
			errs = append(errs, err)
		}
	}
	return nil, fmt.Errorf("mosquitto did not start: %w", errors.Join(errs...))
}

func (m *mosquitto) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

func (m *mosquitto) start(deadline time.Time) error {
	conf := filepath.Join(m.dir, "mosquitto.conf")
	text := fmt.Sprintf(mosquittoConf, m.port)
	if m.nodelay {
		text += nodelayConf
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(m.bin, "-c", conf)
	cmd.Dir = m.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	m.cmd, m.exit = cmd, exit
	for {
		c, err := net.DialTimeout("tcp", m.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			select {
			case <-exit:
				return fmt.Errorf("mosquitto on port %d exited (port taken?)", m.port)
			default:
				return nil
			}
		}
		select {
		case <-exit:
			return fmt.Errorf("mosquitto on port %d exited: %v", m.port, cmd.ProcessState)
		case <-time.After(2 * time.Millisecond): // poll the port of a starting broker
		}
		if time.Now().After(deadline) {
			m.kill()
			return fmt.Errorf("mosquitto on port %d: not listening: %v", m.port, err)
		}
	}
}

// kill SIGKILLs the broker and waits until it has been reaped. It returns
// the moment the signal was sent.
func (m *mosquitto) kill() time.Time {
	if m.cmd == nil {
		return time.Now()
	}
	t := time.Now()
	m.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-m.exit:
	case <-time.After(10 * time.Second):
	}
	m.cmd = nil
	return t
}

// restart starts a fresh broker (no retained messages) on the same port.
func (m *mosquitto) restart() error {
	m.kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := m.start(deadline)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // the port may still be in use
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freeAddr() (string, error) {
	p, err := freePort()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), err
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
