package modbus

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// EnvPymodbus turns on the tests against Debian's python3-pymodbus, an
// implementation independent of the driver's client library (apt-get install
// python3-pymodbus python3-serial-asyncio socat).
const EnvPymodbus = "DOORBRIDGE_TEST_PYMODBUS"

func needPymodbus(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvPymodbus) != "1" {
		t.Skip(EnvPymodbus + "=1 runs the driver against python3-pymodbus")
	}
}

// pyBoard is a pymodbus server process (testdata/pymodbus_board.py).
type pyBoard struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// startBoard starts a pymodbus server: kind "tcp" at host:port, or "rtu" on
// a serial device, answering for units.
func startBoard(t *testing.T, kind, where string, units ...int) *pyBoard {
	t.Helper()
	us := make([]string, len(units))
	for i, u := range units {
		us[i] = fmt.Sprint(u)
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/pymodbus_board.py", kind, where, strings.Join(us, ","))
	var stderr strings.Builder // pymodbus logs every dropped connection
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &pyBoard{t: t, cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			b.lines <- s.Text()
		}
		close(b.lines)
	}()
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			t.Logf("pymodbus board stderr:\n%s", stderr.String())
		}
	})
	if got := b.line(); got != "ready" {
		t.Fatalf("pymodbus board: first line %q, want ready", got)
	}
	return b
}

// kill ends the board process (a board that loses power).
func (b *pyBoard) kill() {
	if b.cmd.ProcessState == nil {
		_ = b.cmd.Process.Signal(syscall.SIGCONT)
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
	}
}

// freeze stops the board answering without closing anything; thaw resumes.
func (b *pyBoard) freeze() { must(b.t, b.cmd.Process.Signal(syscall.SIGSTOP)) }
func (b *pyBoard) thaw()   { must(b.t, b.cmd.Process.Signal(syscall.SIGCONT)) }

func (b *pyBoard) line() string {
	b.t.Helper()
	select {
	case l, ok := <-b.lines:
		if !ok {
			b.t.Fatal("pymodbus board exited")
		}
		return l
	case <-time.After(30 * time.Second):
		b.t.Fatal("pymodbus board: no answer within 30s")
	}
	return ""
}

func (b *pyBoard) send(cmd string) string {
	b.t.Helper()
	if _, err := fmt.Fprintln(b.in, cmd); err != nil {
		b.t.Fatal(err)
	}
	return b.line()
}

// coils returns the board's coils of unit as "0101...", coil 0 first.
func (b *pyBoard) coils(unit int) string {
	b.t.Helper()
	l := b.send(fmt.Sprintf("coils %d", unit))
	f := strings.Fields(l)
	if len(f) != 3 {
		b.t.Fatalf("pymodbus board: %q", l)
	}
	return f[2]
}

func (b *pyBoard) setInput(unit, addr int, v bool) {
	b.t.Helper()
	n := 0
	if v {
		n = 1
	}
	if got := b.send(fmt.Sprintf("di %d %d %d", unit, addr, n)); got != "ok" {
		b.t.Fatalf("pymodbus board: %q", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// ptyPair links two pseudo-terminals with socat: a serial line for RTU.
func ptyPair(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testbroker.Eventually(t, 10*time.Second, func() bool {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		return ea == nil && eb == nil
	}, "socat created %s and %s", a, b)
	return a, b
}

func openDriver(t *testing.T, url string, unit int) *Driver {
	t.Helper()
	d, err := New(Options{URL: url, UnitID: unit, Speed: 19200, Timeout: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatalf("New(%s unit %d): %v", url, unit, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// exercise writes coils and reads discrete inputs of unit through d, and
// checks them on the board; other, if nonzero, is a unit that must not
// change.
func exercise(t *testing.T, b *pyBoard, d *Driver, unit, other int) {
	t.Helper()
	c0, err := d.OpenOutput("0", false)
	must(t, err)
	c5, err := d.OpenOutput("5", true)
	must(t, err)
	if got := b.coils(unit)[:8]; got != "00000100" {
		t.Fatalf("unit %d coils after opening 0 (off) and 5 (on): %s, want 00000100", unit, got)
	}
	must(t, c0.Set(true))
	must(t, c5.Set(false))
	if got := b.coils(unit)[:8]; got != "10000000" {
		t.Fatalf("unit %d coils after Set: %s, want 10000000", unit, got)
	}
	if other != 0 {
		if got := b.coils(other)[:8]; got != "00000000" {
			t.Fatalf("unit %d's coils changed by writes to unit %d: %s", other, unit, got)
		}
	}
	b.setInput(unit, 7, true)
	in, err := d.OpenInput("7", drivers.InputOptions{})
	must(t, err)
	waitRead(t, in, true)
	b.setInput(unit, 7, false)
	waitRead(t, in, false)
}

func waitRead(t *testing.T, in drivers.Input, want bool) {
	t.Helper()
	testbroker.Eventually(t, 10*time.Second, func() bool {
		v, err := in.Read()
		return err == nil && v == want
	}, "discrete input reads %v", want)
}

func TestPymodbusTCP(t *testing.T) {
	needPymodbus(t)
	addr := freeAddr(t)
	b := startBoard(t, "tcp", addr, 1, 2)
	exercise(t, b, openDriver(t, "tcp://"+addr, 1), 1, 2)
	exercise(t, b, openDriver(t, "tcp://"+addr, 2), 2, 0)
}

func TestPymodbusRTU(t *testing.T) {
	needPymodbus(t)
	ours, theirs := ptyPair(t)
	b := startBoard(t, "rtu", theirs, 3)
	exercise(t, b, openDriver(t, "rtu://"+ours, 3), 3, 0)
}

// TestPymodbusStopsAnswering: a board that goes silent mid-run fails writes
// within the timeout and makes inputs unreadable; once it answers again the
// driver reconnects by itself.
func TestPymodbusStopsAnswering(t *testing.T) {
	needPymodbus(t)
	addr := freeAddr(t)
	b := startBoard(t, "tcp", addr, 1)
	d := openDriver(t, "tcp://"+addr, 1)
	c, err := d.OpenOutput("2", false)
	must(t, err)
	in, err := d.OpenInput("4", drivers.InputOptions{})
	must(t, err)

	b.freeze()
	start := time.Now()
	if err := c.Set(true); err == nil {
		t.Fatal("Set on a silent board succeeded")
	} else {
		t.Logf("Set on a silent board: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	testbroker.Eventually(t, 10*time.Second, func() bool { _, err := in.Read(); return err != nil }, "a silent board's input fails to read")
	_, err = in.Read()
	t.Logf("Read on a silent board: %v", err)

	b.thaw()
	testbroker.Eventually(t, 15*time.Second, func() bool { return c.Set(true) == nil }, "Set works once the board answers again")
	if got := b.coils(1)[:4]; got != "0010" {
		t.Fatalf("coils after the board came back: %s, want 0010", got)
	}
	b.setInput(1, 4, true)
	waitRead(t, in, true)
}

// TestPymodbusNotThereAtStart: New fails with an error naming the board;
// once the board is up a new driver works.
func TestPymodbusNotThereAtStart(t *testing.T) {
	needPymodbus(t)
	addr := freeAddr(t)
	_, err := New(Options{URL: "tcp://" + addr, UnitID: 1, Timeout: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "tcp://"+addr+" unit 1") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("New with no board: %v, want an error naming the board and the refusal", err)
	}
	t.Logf("New with no board: %v", err)
	b := startBoard(t, "tcp", addr, 1)
	exercise(t, b, openDriver(t, "tcp://"+addr, 1), 1, 0)
}
