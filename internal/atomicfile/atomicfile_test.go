package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// syncCall is what was on disk when an fsync was asked for.
type syncCall struct {
	name   string // the file or directory synced
	isDir  bool
	target string // the content under the target path at that moment
}

func recordSyncs(t *testing.T, path string, calls *[]syncCall, fail func(f *os.File) error) func(*os.File) error {
	return func(f *os.File) error {
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		now, _ := os.ReadFile(path)
		*calls = append(*calls, syncCall{name: f.Name(), isDir: st.IsDir(), target: string(now)})
		if fail != nil {
			if err := fail(f); err != nil {
				return err
			}
		}
		return f.Sync() // the real one too: the hook observes, it does not fake
	}
}

// The write path fsyncs the new file before it takes the target's name,
// and the directory after the rename: without the first a power cut can
// leave an empty or NUL-filled file, without the second the old content.
func TestWriteSyncsFileThenRenamesThenSyncsDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alarm_latched")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls []syncCall
	if err := write(path, []byte("new"), 0o600, recordSyncs(t, path, &calls, nil)); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 {
		t.Fatalf("fsync calls %+v; want the temporary file, then the directory", calls)
	}
	if f := calls[0]; f.isDir || filepath.Dir(f.name) != dir || f.name == path || f.target != "old" {
		t.Errorf("first fsync %+v; want the temporary file beside the target, before the rename (target still old)", f)
	}
	if d := calls[1]; !d.isDir || d.name != dir || d.target != "new" {
		t.Errorf("second fsync %+v; want the directory %s, after the rename (target new)", d, dir)
	}
	checkOnly(t, dir, path, "new", 0o600)
}

// Write (the real fsync) creates the file with the mode asked for and
// leaves nothing else behind.
func TestWriteCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := Write(path, []byte("1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	checkOnly(t, dir, path, "1\n", 0o640)
	if err := Write(path, []byte("0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkOnly(t, dir, path, "0\n", 0o600)
}

// A failed fsync of the new file leaves the old content and no temporary
// file; a failed fsync of the directory is reported.
func TestWriteSyncFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("input/output error")
	var calls []syncCall
	failFile := func(f *os.File) error {
		if st, _ := f.Stat(); !st.IsDir() {
			return eio
		}
		return nil
	}
	if err := write(path, []byte("new"), 0o600, recordSyncs(t, path, &calls, failFile)); !errors.Is(err, eio) {
		t.Fatalf("file fsync failing: err %v; want it reported", err)
	}
	checkOnly(t, dir, path, "old", 0o600)

	failDir := func(f *os.File) error {
		if st, _ := f.Stat(); st.IsDir() {
			return eio
		}
		return nil
	}
	if err := write(path, []byte("new"), 0o600, recordSyncs(t, path, &calls, failDir)); !errors.Is(err, eio) {
		t.Fatalf("directory fsync failing: err %v; want it reported", err)
	}
}

func TestWriteMissingDirectory(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "state"), []byte("x"), 0o600); err == nil {
		t.Fatal("no error writing into a missing directory")
	}
}

func checkOnly(t *testing.T, dir, path, want string, perm os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Errorf("%s = %q, %v; want %q", path, got, err, want)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != perm {
		t.Errorf("%s mode %v, %v; want %v", path, st.Mode().Perm(), err, perm)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v; want only %s", names, filepath.Base(path))
	}
}

// BenchmarkWrite is the cost of one durable state write (the latch) on the
// file system of $TMPDIR: go test -run x -bench Write -benchtime 200x.
func BenchmarkWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "alarm_latched")
	for i := 0; b.Loop(); i++ {
		if err := Write(path, []byte{'0' + byte(i%2)}, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

// WriteUnsynced replaces the content, with the mode asked for, and leaves no
// temporary file behind.
func TestWriteUnsynced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "levels.json")
	for _, content := range []string{`{"0": true}`, `{"0": false}`} {
		if err := WriteUnsynced(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1", len(entries))
	}
}
