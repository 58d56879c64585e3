package hwwatchdog

import (
	"os"
	"path/filepath"
	"testing"
)

// A regular file stands in for the device: what was written is what the
// driver would have seen.
func fakeDevice(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func written(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPingAndMagicClose(t *testing.T) {
	p := fakeDevice(t)
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := d.Ping(); err != nil {
			t.Fatal(err)
		}
	}
	if got := written(t, p); got != "..." {
		t.Fatalf("after 3 pings: %q", got)
	}
	if err := d.MagicClose(); err != nil {
		t.Fatal(err)
	}
	if got := written(t, p); got != "...V" {
		t.Fatalf("after magic close: %q, want a final V", got)
	}
}

func TestCloseLeavesArmed(t *testing.T) {
	p := fakeDevice(t)
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	d.Ping()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := written(t, p); got != "." {
		t.Fatalf("Close wrote %q; only a clean shutdown writes V", got)
	}
}

func TestOpenMissing(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("Open of a missing device succeeded")
	}
}
