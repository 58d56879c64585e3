// Package nuttest runs a real NUT upsd with the dummy-ups driver for
// end-to-end tests: one UPS whose ups.status the test sets by rewriting the
// driver's .dev file, served on a free loopback port.
//
// It follows shared/docs/test-services.md: a temporary directory serves as
// NUT_CONFPATH, NUT_STATEPATH and NUT_ALTPIDPATH, the driver runs in
// dummy-loop mode with pollinterval 1, and both daemons run in the
// foreground as children of the test, killed in t.Cleanup.
//
// Everything here takes a testing.TB and fails the test on error, so call it
// from the test's goroutine, like t.Fatal.
package nuttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries started by Start.
const (
	UPSDPath   = "/lib/nut/upsd"
	DriverPath = "/lib/nut/dummy-ups"
)

// DefaultUPS is the name of the UPS that Start sets up.
const DefaultUPS = "ups1"

// startTimeout bounds each wait of Start and StartUPSD: the driver's socket,
// and upsd serving a status other than WAIT (a cold start takes about 3 s).
const startTimeout = 15 * time.Second

// UPSD is a running upsd with one dummy-ups UPS. Its methods are meant for
// the test's goroutine; Addr, Host, Port and UPS may be called from any.
type UPSD struct {
	dir  string
	port int
	ups  string
	env  []string
	log  *lockedBuffer

	mu     sync.Mutex // guards the processes, for Cleanup
	driver *proc
	upsd   *proc
}

// proc is a started daemon; done is closed once it has exited and been
// reaped.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Available reports whether the NUT binaries are installed.
func Available() bool {
	for _, p := range []string{UPSDPath, DriverPath} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Start runs dummy-ups and upsd for a UPS named DefaultUPS with status "OL",
// and returns once upsd serves that status. It skips the test when NUT is not
// installed. Both daemons are killed in t.Cleanup; if the test failed, their
// output is logged.
func Start(t testing.TB) *UPSD {
	t.Helper()
	if !Available() {
		t.Skipf("nuttest: NUT is not installed (%s, %s); apt-get install nut-server nut-client", UPSDPath, DriverPath)
	}
	// Not t.TempDir: the driver's unix socket lives in the state directory,
	// and socket paths are limited to 108 bytes, which long test names break.
	dir, err := os.MkdirTemp("", "nut")
	if err != nil {
		t.Fatalf("nuttest: %v", err)
	}
	u := &UPSD{dir: dir, ups: DefaultUPS, log: &lockedBuffer{}}
	t.Cleanup(func() {
		u.stopAll()
		if t.Failed() {
			t.Logf("nuttest: output of dummy-ups and upsd:\n%s", u.log.String())
		}
		os.RemoveAll(dir)
	})
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatalf("nuttest: %v", err)
	}
	u.env = append(os.Environ(), "NUT_CONFPATH="+dir, "NUT_STATEPATH="+state, "NUT_ALTPIDPATH="+state)
	ups := fmt.Sprintf("[%s]\n\tdriver = dummy-ups\n\tport = %s.dev\n\tmode = dummy-loop\n\tpollinterval = 1\n", u.ups, u.ups)
	u.writeFile(t, "ups.conf", ups, 0o600)
	u.writeFile(t, "upsd.users", "", 0o600)
	u.SetStatus(t, "OL")

	u.StartDriver(t)
	u.StartUPSD(t)
	return u
}

// Addr is upsd's address, "127.0.0.1:port".
func (u *UPSD) Addr() string { return net.JoinHostPort(u.Host(), strconv.Itoa(u.port)) }

// Host is upsd's listening address, "127.0.0.1".
func (u *UPSD) Host() string { return "127.0.0.1" }

// Port is upsd's TCP port. It stays the same across KillUPSD and StartUPSD.
func (u *UPSD) Port() int { return u.port }

// UPS is the UPS name to ask upsd about.
func (u *UPSD) UPS() string { return u.ups }

// Dir is the temporary directory holding the configuration and state.
func (u *UPSD) Dir() string { return u.dir }

// SetStatus sets the UPS's ups.status, such as "OL", "OB" or "OB LB", by
// replacing the driver's .dev file atomically. upsd serves the new status
// within about a second; WaitStatus waits for it.
func (u *UPSD) SetStatus(t testing.TB, status string) {
	t.Helper()
	if strings.ContainsAny(status, "\n\r") {
		t.Fatalf("nuttest: status %q has a line break", status)
	}
	u.writeFile(t, u.ups+".dev", "ups.status: "+status+"\n", 0o644)
}

// WaitStatus waits up to timeout for upsd to serve ups.status == status.
func (u *UPSD) WaitStatus(t testing.TB, status string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	var err error
	for time.Now().Before(deadline) {
		if last, err = u.Get("ups.status"); err == nil && last == status {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nuttest: ups.status still %q (err %v) after %s, want %q", last, err, timeout, status)
}

// Get asks upsd for one variable of the UPS on a new connection and returns
// its value, or an error such as "ERR DATA-STALE".
func (u *UPSD) Get(name string) (string, error) {
	conn, err := net.DialTimeout("tcp", u.Addr(), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET VAR %s %s\n", u.ups, name); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	v, ok := strings.CutPrefix(line, fmt.Sprintf("VAR %s %s ", u.ups, name))
	if !ok {
		return "", errors.New(line)
	}
	return strings.Trim(v, `"`), nil
}

// KillUPSD kills upsd (SIGKILL) and waits for it to exit: new connections
// are refused, open ones are reset.
func (u *UPSD) KillUPSD(t testing.TB) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	kill(u.upsd)
	u.upsd = nil
}

// KillDriver kills dummy-ups: upsd then answers ERR DRIVER-NOT-CONNECTED.
func (u *UPSD) KillDriver(t testing.TB) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	kill(u.driver)
	u.driver = nil
}

// FreezeUPSD stops upsd with SIGSTOP: connections are still accepted by the
// kernel but nothing answers, like a hung server or a silent link.
// ThawUPSD resumes it; Cleanup kills it either way.
func (u *UPSD) FreezeUPSD(t testing.TB) { t.Helper(); u.signalUPSD(t, syscall.SIGSTOP) }

// ThawUPSD resumes upsd after FreezeUPSD.
func (u *UPSD) ThawUPSD(t testing.TB) { t.Helper(); u.signalUPSD(t, syscall.SIGCONT) }

func (u *UPSD) signalUPSD(t testing.TB, sig syscall.Signal) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.upsd == nil {
		t.Fatalf("nuttest: upsd is not running")
	}
	if err := u.upsd.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("nuttest: signal upsd: %v", err)
	}
}

// StartUPSD starts upsd (again, after KillUPSD) on the same port and waits
// until it serves a status other than WAIT. The first start picks a free
// port, retrying with another if upsd cannot bind it.
func (u *UPSD) StartUPSD(t testing.TB) {
	t.Helper()
	u.mu.Lock()
	running := u.upsd != nil
	u.mu.Unlock()
	if running {
		t.Fatalf("nuttest: upsd is already running")
	}
	fixed := u.port != 0
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if !fixed {
			u.port = freePort(t)
		}
		if err = u.tryUPSD(t); err == nil {
			return
		}
	}
	t.Fatalf("nuttest: %v", err)
}

// tryUPSD starts upsd on u.port and waits until it serves a status.
func (u *UPSD) tryUPSD(t testing.TB) error {
	t.Helper()
	u.writeFile(t, "upsd.conf", fmt.Sprintf("LISTEN 127.0.0.1 %d\n", u.port), 0o600)
	p, err := u.start(UPSDPath, "-u", "root", "-F")
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.upsd = p
	u.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	var status string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			u.mu.Lock()
			u.upsd = nil
			u.mu.Unlock()
			return fmt.Errorf("upsd on port %d exited at start", u.port)
		default:
		}
		status, err = u.Get("ups.status")
		if err == nil && status != "WAIT" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	u.mu.Lock()
	kill(u.upsd)
	u.upsd = nil
	u.mu.Unlock()
	return fmt.Errorf("upsd on port %d not serving after %s: status %q, %v", u.port, startTimeout, status, err)
}

// StartDriver starts dummy-ups (again, after KillDriver) and waits for its
// socket. upsd reconnects to it within a few seconds; WaitStatus waits for
// that.
func (u *UPSD) StartDriver(t testing.TB) {
	t.Helper()
	u.mu.Lock()
	running := u.driver != nil
	u.mu.Unlock()
	if running {
		t.Fatalf("nuttest: dummy-ups is already running")
	}
	sock := filepath.Join(u.dir, "state", "dummy-ups-"+u.ups)
	os.Remove(sock) // left by a killed driver; wait for the new one's
	p, err := u.start(DriverPath, "-a", u.ups, "-u", "root", "-F")
	if err != nil {
		t.Fatalf("nuttest: %v", err)
	}
	u.mu.Lock()
	u.driver = p
	u.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("nuttest: dummy-ups exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nuttest: dummy-ups socket %s missing after %s", sock, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start runs a daemon in the foreground with the test's NUT environment.
func (u *UPSD) start(path string, args ...string) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir = u.dir
	cmd.Env = u.env
	cmd.Stdout, cmd.Stderr = u.log, u.log
	// Wait must not hang on a grandchild holding the output pipe.
	cmd.WaitDelay = time.Second
	orphanKill(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", filepath.Base(path), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (u *UPSD) stopAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	kill(u.upsd)
	kill(u.driver)
	u.upsd, u.driver = nil, nil
}

// kill sends SIGKILL to a daemon (which ends a stopped process too) and
// waits until it has been reaped.
func kill(p *proc) {
	if p == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// writeFile replaces dir/name atomically: write a temporary file, rename.
func (u *UPSD) writeFile(t testing.TB, name, content string, mode os.FileMode) {
	t.Helper()
	tmp, err := os.CreateTemp(u.dir, "."+name+".*")
	if err == nil {
		_, err = tmp.WriteString(content)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(u.dir, name))
	}
	if err != nil {
		t.Fatalf("nuttest: write %s: %v", name, err)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("nuttest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects the daemons' output from their copying goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
