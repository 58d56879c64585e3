package sim_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

func writeFaults(t *testing.T, path, content string) {
	t.Helper()
	if err := sim.WriteFileAtomic(path, []byte(content)); err != nil {
		t.Fatal(err)
	}
}

func TestFaultsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "faults.json")
	d := sim.New(sim.Options{FaultsFile: path}) // absent: no fault
	defer d.Close()
	out, err := d.OpenOutput("3", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Set(true); err != nil {
		t.Fatalf("no faults file: Set: %v", err)
	}

	writeFaults(t, path, `{"3": {"error": "i2c: no ack"}}`)
	testbroker.Eventually(t, wait, func() bool { return d.Fault("3").Error != "" }, "the error fault is read")
	level := out.Level()
	if err := out.Set(!level); err == nil || !strings.Contains(err.Error(), "i2c: no ack") {
		t.Fatalf("Set with an error fault: %v", err)
	}
	if out.Level() != level {
		t.Fatalf("a failed write changed the line")
	}

	writeFaults(t, path, `{"3": {"oops": 1}}`) // bad: changes nothing
	time.Sleep(3 * sim.PollInterval)           // not an outcome: a bad file must not be taken
	if d.Fault("3").Error == "" {
		t.Fatalf("a bad faults file changed the faults in force")
	}
	writeFaults(t, path, `{"3": {"hang": true}}`)
	testbroker.Eventually(t, wait, func() bool { return d.Fault("3").Hang }, "the hang fault is read")
	done := make(chan error, 1)
	go func() { done <- out.Set(!level) }()
	select {
	case err := <-done:
		t.Fatalf("a hung write returned: %v", err)
	default:
	}
	writeFaults(t, path, `{}`)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("released write: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("write still hung after the fault was removed")
	}
	if out.Level() == level {
		t.Fatalf("released write did not happen")
	}
}

func TestHangEndsOnClose(t *testing.T) {
	d := sim.New(sim.Options{})
	out, err := d.OpenOutput("0", false)
	if err != nil {
		t.Fatal(err)
	}
	d.SetFault("0", sim.Fault{Hang: true})
	done := make(chan error, 1)
	go func() { done <- out.Set(true) }()
	d.Close()
	if err := <-done; err == nil {
		t.Fatalf("hung write succeeded after Close")
	}
}

func TestBadFaults(t *testing.T) {
	for content, want := range map[string]string{
		`[1]`:                                 "want a JSON object from channel to fault",
		`{"3": {"delay": "soon"}}`:            `channel "3": delay "soon": want a positive duration`,
		`{"3": {"delay": "-1s"}}`:             `channel "3": delay "-1s"`,
		`{"3": {"hang": false}}`:              `channel "3": hang false`,
		`{"3": {"error": ""}}`:                `channel "3": error ""`,
		`{"3": {"slow": true}}`:               `channel "3": json: unknown field "slow"`,
		`{"3": {}}`:                           `channel "3": want exactly one of`,
		`{"3": {"hang": true, "error": "x"}}`: `channel "3": want exactly one of`,
	} {
		path := filepath.Join(t.TempDir(), "faults.json")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := sim.Options{FaultsFile: path}.Open("s", slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "faults_file "+path) || !strings.Contains(err.Error(), want) {
			t.Errorf("faults %s: Open error %v, want one naming the file and containing %q", content, err, want)
		}
	}
}

func TestBadFaultsFileIsAConfigError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "faults.json")
	if err := os.WriteFile(path, []byte(`{"7": {"delay": "fast"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := drivers.Decode("sim", map[string]any{"faults_file": path})
	want := `sim: faults_file ` + path + `: channel "7": delay "fast": want a positive duration like "1s" or "250ms"`
	if err == nil || err.Error() != want {
		t.Fatalf("Decode: %v\nwant: %s", err, want)
	}
	if _, err := drivers.Decode("sim", map[string]any{"faults_file": path + ".absent"}); err != nil {
		t.Fatalf("Decode with a faults file not there yet: %v", err)
	}
}
