package statefile

import (
	"errors"
	"io/fs"
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
