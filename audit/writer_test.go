package audit

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLog(b *logBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// line is an event line of exactly n bytes with sequence seq.
func line(seq uint64, n int) []byte {
	head := fmt.Sprintf(`{"seq":%d,"time":"2026-01-02T03:04:05Z","kind":"relay","outcome":"`, seq)
	tail := `"}` + "\n"
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

// seqs reads every event of the log at path, oldest first.
func seqs(t *testing.T, path string) []uint64 {
	t.Helper()
	var out []uint64
	bad, err := ReadAll(path, func(_ string, e Event) { out = append(out, e.Seq) })
	if err != nil || bad != 0 {
		t.Fatalf("ReadAll: %d bad lines, %v", bad, err)
	}
	return out
}

func upTo(n uint64) []uint64 {
	var out []uint64
	for i := uint64(1); i <= n; i++ {
		out = append(out, i)
	}
	return out
}

func TestRotationKeepsBoundedFilesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var logs logBuffer
	r, err := openRotator(Options{Path: path, MaxSize: 1000, MaxFiles: 3, Log: testLog(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	// 100-byte lines: 10 per file. 45 lines fill path.4 … path; path.4
	// (events 1..10) is dropped.
	for i := uint64(1); i <= 45; i++ {
		if err := r.append(line(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	r.close()
	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path + ".3", path + ".2", path + ".1", path}
	if !slices.Equal(files, want) {
		t.Fatalf("Files = %q, want %q", files, want)
	}
	for _, f := range files[:3] {
		if st, _ := os.Stat(f); st.Size() != 1000 {
			t.Errorf("%s: %d bytes, want 1000 (rotated before passing max_size)", f, st.Size())
		}
	}
	if got := seqs(t, path); !slices.Equal(got, upTo(45)[10:]) {
		t.Fatalf("events %v, want 11..45: only the oldest file (1..10) dropped", got)
	}
	if got := LastSeq(path); got != 45 {
		t.Fatalf("LastSeq = %d, want 45", got)
	}
	if logs.String() != "" {
		t.Fatalf("unexpected log output: %s", logs.String())
	}
}

// A rotation that fails never costs the event being written: it goes to the
// current file, the error is logged once, and rotation is retried later.
func TestRotationFailureKeepsTheEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var logs logBuffer
	r, err := openRotator(Options{Path: path, MaxSize: 1000, MaxFiles: 2, Log: testLog(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	failRename := true
	r.rename = func(o, n string) error {
		if failRename {
			return &os.LinkError{Op: "rename", Old: o, New: n, Err: errors.New("injected failure")}
		}
		return os.Rename(o, n)
	}
	seq := uint64(0)
	write := func(n int) {
		t.Helper()
		for range n {
			seq++
			if err := r.append(line(seq, 100)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(20) // twice max_size: every rotation fails
	if got := seqs(t, path); !slices.Equal(got, upTo(20)) {
		t.Fatalf("events after failed rotations: %v, want 1..20 in the current file", got)
	}
	if n := strings.Count(logs.String(), "rotation failed"); n != 1 {
		t.Fatalf("rotation failure logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "injected failure") {
		t.Fatalf("log does not say why: %s", logs.String())
	}

	// The current file was renamed, but no new file could be opened: the
	// writer goes on in path.1 until it can.
	failRename = false
	r.openFile = func(string) (*os.File, error) { return nil, errors.New("injected open failure") }
	write(5)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("current file still at %s: %v", path, err)
	}
	if got := seqs(t, path); !slices.Equal(got, upTo(25)) {
		t.Fatalf("events while displaced: %v, want 1..25", got)
	}

	// Opening works again: the next rotation opens a new current file and
	// does not shift the displaced one away.
	r.openFile = openAppend
	write(10)
	r.close()
	if got := seqs(t, path); !slices.Equal(got, upTo(35)) {
		t.Fatalf("events after recovery: %v, want 1..35", got)
	}
	files, _ := Files(path)
	if !slices.Equal(files, []string{path + ".1", path}) {
		t.Fatalf("files after recovery: %q", files)
	}
	if !strings.Contains(logs.String(), "rotation works again") {
		t.Fatalf("recovery not logged: %s", logs.String())
	}
}

func TestWriterWritesInOrderAndContinuesSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	w, err := Open(Options{Path: path, Log: testLog(&logBuffer{})})
	if err != nil {
		t.Fatal(err)
	}
	energized := true
	for i := uint64(1); i <= 100; i++ {
		if !w.Write(Event{Seq: i, Time: time.Unix(1_800_000_000, 0), Kind: "relay", Door: "front", Energized: &energized, Outcome: "locked"}) {
			t.Fatalf("event %d dropped", i)
		}
	}
	if err := w.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, path); !slices.Equal(got, upTo(100)) {
		t.Fatalf("events %v", got)
	}
	if got := LastSeq(path); got != 100 {
		t.Fatalf("LastSeq = %d, want 100", got)
	}
	dropped := 0
	w2, _ := Open(Options{Path: path, OnDrop: func() { dropped++ }, Log: testLog(&logBuffer{})})
	w2.Close(time.Second)
	if w2.Write(Event{Seq: 101}) || dropped != 1 {
		t.Fatalf("a write after Close was not dropped and counted (dropped=%d)", dropped)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
}

func TestDecodeSkipsBrokenLines(t *testing.T) {
	in := string(line(1, 100)) + "\n" + `{"seq":2,"kind":"rel` + "\n" + "not json\n" + string(line(3, 120))
	var got []uint64
	bad, err := Decode(strings.NewReader(in), func(e Event) { got = append(got, e.Seq) })
	if err != nil || bad != 2 || !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("Decode = %v, %d bad, %v; want [1 3], 2 bad", got, bad, err)
	}
	// A torn last line does not hide the last complete event.
	path := filepath.Join(t.TempDir(), "a.jsonl")
	os.WriteFile(path, []byte(string(line(7, 100))+`{"seq":8,"ki`), 0o600)
	if got := LastSeq(path); got != 7 {
		t.Fatalf("LastSeq with a torn line = %d, want 7", got)
	}
	if got := LastSeq(filepath.Join(t.TempDir(), "none")); got != 0 {
		t.Fatalf("LastSeq of no file = %d", got)
	}
}

func TestFilesOrderAndGlobCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "we[ir]d*")
	os.MkdirAll(dir, 0o700)
	path := filepath.Join(dir, "audit.log")
	for _, name := range []string{"audit.log", "audit.log.1", "audit.log.2", "audit.log.10", "audit.log.old", "audit.log.0"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path + ".10", path + ".2", path + ".1", path}
	if !slices.Equal(files, want) {
		t.Fatalf("Files = %q, want %q", files, want)
	}
}
