package testbroker

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MosquittoBinary returns the mosquitto binary for tests that need mosquitto itself (TLS,
// password files, ACLs): the path in DOORBRIDGE_TEST_MOSQUITTO when it names one, else
// DefaultMosquitto. The test is skipped when that is not installed.
func MosquittoBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvMosquitto)
	if bin == "" || bin == "1" {
		bin = DefaultMosquitto
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Skipf("testbroker: mosquitto is not installed (%v); .ci/run installs it", err)
	}
	return bin
}

// Mosquitto is a mosquitto process run from a config file the test writes, for what the
// in-process broker cannot show: several listeners, TLS, password files and ACLs. Its methods
// must be called from the test's goroutine.
type Mosquitto struct {
	t       testing.TB // nil for LaunchMosquitto
	bin     string
	dir     string
	out     *lockedBuffer
	logPath string // LaunchMosquitto: output appended to this file instead of out
	conf    string // path of the config file, for Restart
	ports   map[string]int

	mu  sync.Mutex
	run *mosqRun
}

// StartMosquitto picks a free loopback port for every listener name, calls conf to get the
// config text (conf reads the ports with Port and may write files into Dir), writes it, starts
// mosquitto in the foreground and waits until every listener accepts TCP connections. A line
// `user <current user>` is put in front, so that mosquitto run as root does not switch to a user
// that cannot read the test's files. If mosquitto does not come up (a port taken in between),
// it tries again with new ports a few times. It is killed in t.Cleanup; its output is logged
// when the test fails.
func StartMosquitto(t testing.TB, listeners []string, conf func(m *Mosquitto) string) *Mosquitto {
	t.Helper()
	m := &Mosquitto{t: t, bin: MosquittoBinary(t), dir: t.TempDir(), out: &lockedBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testbroker: mosquitto output:\n%s", m.out.String())
		}
		m.Kill()
	})
	userLine := ""
	if u, err := user.Current(); err == nil {
		userLine = "user " + u.Username + "\n"
	}
	if err := m.launch(listeners, func(m *Mosquitto) string { return userLine + conf(m) }); err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	return m
}

// LaunchMosquitto is StartMosquitto for a program rather than a test (cmd/doorbench): it runs
// bin with exactly the config conf returns (no user line), in dir, appending mosquitto's output
// to dir/mosquitto.log (a file, so that no goroutine of the caller copies it), and the process is
// killed if the caller dies. The caller must Kill it.
func LaunchMosquitto(bin, dir string, listeners []string, conf func(m *Mosquitto) string) (*Mosquitto, error) {
	m := &Mosquitto{bin: bin, dir: dir, out: &lockedBuffer{}, logPath: filepath.Join(dir, "mosquitto.log")}
	if err := m.launch(listeners, conf); err != nil {
		return nil, err
	}
	return m, nil
}

// launch picks the ports, writes the config and starts mosquitto, trying again with new ports a
// few times.
func (m *Mosquitto) launch(listeners []string, conf func(m *Mosquitto) string) error {
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	var errs []error
	for range 5 {
		m.ports = map[string]int{}
		for _, name := range listeners {
			port, err := freePort()
			if err != nil {
				return fmt.Errorf("picking a free port: %w", err)
			}
			m.ports[name] = port
		}
		if err := os.WriteFile(m.conf, []byte(conf(m)), 0o600); err != nil {
			return err
		}
		err := m.start(m.conf, time.Now().Add(startTimeout))
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("mosquitto did not start: %w", errors.Join(errs...))
}

// Restart kills mosquitto and starts a fresh one (nothing retained unless the config persists it)
// with the same config on the same ports, retrying while a port is still busy.
func (m *Mosquitto) Restart() error {
	m.Kill()
	deadline := time.Now().Add(startTimeout)
	for {
		err := m.start(m.conf, deadline)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // back off between bind attempts
	}
}

// Port is the port picked for the listener called name.
func (m *Mosquitto) Port(name string) int {
	p, ok := m.ports[name]
	if !ok {
		msg := fmt.Sprintf("testbroker: no listener %q (have %v)", name, slices.Sorted(maps.Keys(m.ports)))
		if m.t == nil {
			panic(msg)
		}
		m.t.Helper()
		m.t.Fatal(msg)
	}
	return p
}

// Addr is "127.0.0.1:<port>" of the listener called name.
func (m *Mosquitto) Addr(name string) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port(name)))
}

// PID is the running mosquitto's process id (0 once killed), to read its memory use.
func (m *Mosquitto) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run == nil {
		return 0
	}
	return m.run.cmd.Process.Pid
}

// Dir is the temporary directory of the config file, for the files it refers to.
func (m *Mosquitto) Dir() string { return m.dir }

// Output is everything mosquitto has written so far.
func (m *Mosquitto) Output() string {
	if m.logPath != "" {
		b, _ := os.ReadFile(m.logPath)
		return string(b)
	}
	return m.out.String()
}

// Kill sends SIGKILL and waits until the process is reaped: clients see their connections
// reset at once. Calling it again does nothing.
func (m *Mosquitto) Kill() {
	m.mu.Lock()
	r := m.run
	m.run = nil
	m.mu.Unlock()
	if r != nil {
		if err := r.kill(); err != nil && m.t != nil {
			m.t.Helper()
			m.t.Errorf("testbroker: killing mosquitto: %v", err)
		}
	}
}

func (m *Mosquitto) start(conf string, deadline time.Time) error {
	fmt.Fprintf(m.out, "--- testbroker: starting %s -c %s\n", m.bin, conf)
	cmd := exec.Command(m.bin, "-c", conf)
	cmd.Dir = m.dir
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if m.logPath != "" {
		logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close() // the child has its own copy once started
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	r := &mosqRun{cmd: cmd, exited: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	for _, port := range m.ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for {
			select {
			case <-r.exited:
				return fmt.Errorf("mosquitto exited: %v", r.err)
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				_ = r.kill()
				return fmt.Errorf("mosquitto not accepting connections on %s by the deadline: %v", addr, err)
			}
			select {
			case <-r.exited:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	select {
	case <-r.exited: // a port belonged to someone else
		return fmt.Errorf("mosquitto exited: %v", r.err)
	default:
	}
	m.mu.Lock()
	m.run = r
	m.mu.Unlock()
	return nil
}

// PasswordFile writes a mosquitto password file for users (name: password) into dir with
// mosquitto_passwd -b, as an installer would, and returns its path.
func PasswordFile(t testing.TB, dir string, users map[string]string) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skipf("testbroker: mosquitto_passwd is not installed: %v", err)
	}
	path := filepath.Join(dir, "passwd")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(users)) {
		out, err := exec.Command(bin, "-b", path, name, users[name]).CombinedOutput()
		if err != nil {
			t.Fatalf("testbroker: mosquitto_passwd %s: %v\n%s", name, err, out)
		}
	}
	return path
}

// TLSListener is the mosquitto config of a TLS listener on 127.0.0.1:port with the server
// certificate certFile/keyFile. When clientCA is set, clients must present a certificate
// signed by it (mutual TLS).
func TLSListener(port int, certFile, keyFile, clientCA string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n", port, certFile, keyFile)
	if clientCA != "" {
		fmt.Fprintf(&b, "cafile %s\nrequire_certificate true\n", clientCA)
	}
	return b.String()
}
