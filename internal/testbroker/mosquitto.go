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
	t     testing.TB
	bin   string
	dir   string
	out   *lockedBuffer
	ports map[string]int

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
	var errs []error
	for range 5 {
		m.ports = map[string]int{}
		for _, name := range listeners {
			port, err := freePort()
			if err != nil {
				t.Fatalf("testbroker: picking a free port: %v", err)
			}
			m.ports[name] = port
		}
		path := filepath.Join(m.dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte(userLine+conf(m)), 0o600); err != nil {
			t.Fatalf("testbroker: %v", err)
		}
		err := m.start(path, time.Now().Add(startTimeout))
		if err == nil {
			return m
		}
		errs = append(errs, err)
	}
	t.Fatalf("testbroker: mosquitto did not start: %v", errors.Join(errs...))
	return nil
}

// Port is the port picked for the listener called name.
func (m *Mosquitto) Port(name string) int {
	m.t.Helper()
	p, ok := m.ports[name]
	if !ok {
		m.t.Fatalf("testbroker: no listener %q (have %v)", name, slices.Sorted(maps.Keys(m.ports)))
	}
	return p
}

// Addr is "127.0.0.1:<port>" of the listener called name.
func (m *Mosquitto) Addr(name string) string {
	m.t.Helper()
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
func (m *Mosquitto) Output() string { return m.out.String() }

// Kill sends SIGKILL and waits until the process is reaped: clients see their connections
// reset at once. Calling it again does nothing.
func (m *Mosquitto) Kill() {
	m.t.Helper()
	m.mu.Lock()
	r := m.run
	m.run = nil
	m.mu.Unlock()
	if r != nil {
		if err := r.kill(); err != nil {
			m.t.Errorf("testbroker: killing mosquitto: %v", err)
		}
	}
}

func (m *Mosquitto) start(conf string, deadline time.Time) error {
	fmt.Fprintf(m.out, "--- testbroker: starting %s -c %s\n", m.bin, conf)
	cmd := exec.Command(m.bin, "-c", conf)
	cmd.Dir = m.dir
	cmd.Stdout, cmd.Stderr = m.out, m.out
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
