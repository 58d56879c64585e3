package statefile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var (
	initial = []byte("0")
	safe    = []byte("1")
)

func open(t *testing.T, dir string) *Dir {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return d
}

func load(t *testing.T, d *Dir, name string) (string, error) {
	t.Helper()
	v, err := d.Load(name, initial, safe)
	return string(v), err
}

// A new directory starts each record at its initial value; what is written
// is what the next process loads.
func TestLoadWriteRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d := open(t, dir)
	if v, err := load(t, d, "alarm_latched"); v != "0" || err != nil {
		t.Fatalf("new directory: %q, %v; want the initial value", v, err)
	}
	if err := d.Write("alarm_latched", []byte("1")); err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	if v, err := load(t, d, "alarm_latched"); v != "1" || err != nil {
		t.Fatalf("after a restart: %q, %v; want 1", v, err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
}

// Anything but an intact record reads as the safe value, with the reason
// (R23): empty, NUL-filled, garbage, truncated, the old "0\n" format,
// another record's content, a value with a flipped bit, a missing record
// that was written before, and a directory that is a file.
func TestDamagedReadsSafe(t *testing.T) {
	good := encode("alarm_latched", []byte("0"))
	other := encode("lockdown", []byte("0"))
	flipped := bytes.Clone(good)
	flipped[0] = '1'
	cases := map[string][]byte{
		"empty":         {},
		"NUL-filled":    make([]byte, len(good)),
		"garbage":       []byte("latched? no\n"),
		"truncated":     good[:len(good)-1],
		"cut short":     good[:3],
		"old format":    []byte("0\n"),
		"another's":     other,
		"bit flipped":   flipped,
		"trailing junk": append(bytes.Clone(good), 'x'),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			d := open(t, dir)
			if _, err := load(t, d, "alarm_latched"); err != nil { // written: 0
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "alarm_latched"), content, 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := load(t, open(t, dir), "alarm_latched")
			if v != "1" || !errors.Is(err, ErrDamaged) {
				t.Fatalf("%q read as %q, %v; want the safe value and ErrDamaged", content, v, err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		d := open(t, dir)
		if _, err := load(t, d, "alarm_latched"); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "alarm_latched"))
		if v, err := load(t, open(t, dir), "alarm_latched"); v != "1" || !errors.Is(err, ErrDamaged) {
			t.Fatalf("a record written before and now missing read as %q, %v; want safe", v, err)
		}
	})
	t.Run("directory is a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state")
		os.WriteFile(path, nil, 0o600)
		d, err := Open(path)
		if err == nil {
			t.Fatal("Open of a file: no error")
		}
		if v, err := load(t, d, "alarm_latched"); v != "1" || err == nil {
			t.Fatalf("unusable directory: %q, %v; want safe", v, err)
		}
		if err := d.Write("alarm_latched", []byte("0")); err == nil {
			t.Fatal("Write into an unusable directory: no error")
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		dir := t.TempDir()
		d := open(t, dir)
		load(t, d, "alarm_latched")
		os.Chmod(filepath.Join(dir, "alarm_latched"), 0)
		if v, err := load(t, open(t, dir), "alarm_latched"); v != "1" || err == nil {
			t.Fatalf("unreadable: %q, %v; want safe", v, err)
		}
	})
}

// A damaged index: intact records still load, a missing one reads safe,
// and the next write repairs the index without forgetting that loss.
func TestDamagedIndex(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	for _, n := range []string{"alarm_latched", "lockdown"} {
		if err := d.Write(n, []byte("0")); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dir, "lockdown"))
	os.WriteFile(filepath.Join(dir, indexName), []byte{0, 0, 0}, 0o600)
	d, err := Open(dir)
	if err == nil {
		t.Fatal("damaged index: Open reported nothing")
	}
	if v, err := load(t, d, "alarm_latched"); v != "0" || err != nil {
		t.Errorf("intact record with a damaged index: %q, %v; want its value", v, err)
	}
	if v, err := load(t, d, "lockdown"); v != "1" || err == nil {
		t.Errorf("missing record with a damaged index: %q, %v; want safe", v, err)
	}
	if err := d.Write("battery", []byte("x")); err != nil {
		t.Fatal(err)
	}
	d = open(t, dir) // the index is whole again
	if v, err := load(t, d, "lockdown"); v != "1" || !errors.Is(err, ErrDamaged) {
		t.Errorf("after the index was repaired the lost record read %q, %v; want safe", v, err)
	}
	if v, err := load(t, d, "newcomer"); v != "0" || err != nil {
		t.Errorf("a record never written: %q, %v; want initial", v, err)
	}
}

func TestInvalidNames(t *testing.T) {
	d := open(t, t.TempDir())
	for _, n := range []string{"", ".records", "../x", "a/b", ".hidden", "a b"} {
		if err := d.Write(n, nil); err == nil {
			t.Errorf("Write(%q): no error", n)
		}
		if v, err := d.Load(n, initial, safe); err == nil || string(v) != "1" {
			t.Errorf("Load(%q) = %q, %v; want safe and an error", n, v, err)
		}
	}
}

// The file format is the documented one: the value, then a checksum line.
func TestFormat(t *testing.T) {
	dir := t.TempDir()
	if err := open(t, dir).Write("alarm_latched", []byte("1")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "alarm_latched"))
	if want := "1\ncrc32c:"; !bytes.HasPrefix(got, []byte(want)) || len(got) != 1+trailerLen {
		t.Errorf("file %q; want %q and 8 hex digits", got, want)
	}
}

// Remove is the fallback of a failed Write: a record the index knows reads
// as safe once removed, even after a restart; one it does not know is not
// removed (missing, it would read as never written).
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	if err := d.Write("alarm", []byte("0")); err != nil {
		t.Fatal(err)
	}
	if !d.Known("alarm") || d.Known("other") {
		t.Fatalf("Known: alarm %v, other %v", d.Known("alarm"), d.Known("other"))
	}
	if err := d.Remove("alarm"); err != nil {
		t.Fatal(err)
	}
	if v, err := open(t, dir).Load("alarm", initial, safe); !bytes.Equal(v, safe) || err == nil {
		t.Fatalf("removed record reads %q, %v; want %q and an error", v, err, safe)
	}
	if err := d.Remove("other"); err == nil {
		t.Fatal("removed a record the index does not know")
	}
}
