package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// One holder at a time, a second open of the same file included (flock is
// per open file, so this holds within one process as between two); a tool
// that must not create the lock file is told it is missing; closing
// releases the lock.
func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	if _, err := Lock(dir, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no lock file, create false: %v, want fs.ErrNotExist", err)
	}
	held, err := Lock(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, create := range []bool{true, false} {
		if f, err := Lock(dir, create); !errors.Is(err, ErrLocked) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("second Lock (create %v) while held: %v, want ErrLocked", create, err)
		}
	}
	held.Close()
	again, err := Lock(dir, false)
	if err != nil {
		t.Fatalf("Lock after the holder closed it: %v", err)
	}
	again.Close()
}

// A lock file that is a symlink or a FIFO is refused, never followed or
// waited on: test-door runs as root.
func TestLockRefusesSymlinkAndFIFO(t *testing.T) {
	for name, plant := range map[string]func(path string) error{
		"symlink": func(path string) error { return os.Symlink("/dev/null", path) },
		"fifo":    func(path string) error { return syscall.Mkfifo(path, 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := plant(filepath.Join(dir, LockName)); err != nil {
				t.Fatal(err)
			}
			for _, create := range []bool{false, true} {
				if f, err := Lock(dir, create); err == nil {
					f.Close()
					t.Fatalf("Lock (create %v) took a %s", create, name)
				}
			}
		})
	}
}
