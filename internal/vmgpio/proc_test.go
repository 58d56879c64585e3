package vmgpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// proc is a doorbridge process started by the test.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // Wait's result, set before done closes
}

// syncBuffer collects a process's output for concurrent reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// binary is the static doorbridge binary under test.
func binary() string {
	if b := os.Getenv("DOORBRIDGE_BIN"); b != "" {
		return b
	}
	return "doorbridge"
}

// writeConfig writes yaml to a file of the test and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	must(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

// startBridge runs doorbridge with args; it is killed when the test ends.
func startBridge(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary(), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	must(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("doorbridge %s output:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits for the process to end.
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) {
	p.t.Helper()
	must(p.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("doorbridge still running %v after %v", timeout, sig)
	}
}

// waitOutput waits until the output holds every one of want.
func (p *proc) waitOutput(timeout time.Duration, want ...string) {
	p.t.Helper()
	testbroker.Eventually(p.t, timeout, func() bool {
		// The log is logfmt: quotes inside a value are escaped.
		out := strings.ReplaceAll(p.out.String(), `\"`, `"`)
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	}, "doorbridge output holds %q; it is:\n%s", want, p.out)
}

// run runs doorbridge to its end and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("doorbridge %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}
