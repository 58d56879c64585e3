package statefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockName is the lock's file in a state directory. A running bridge holds
// an exclusive flock on it for its whole life (the kernel drops it when the
// process ends, however it ends).
const LockName = ".lock"

// ErrLocked is Lock's error when another process holds the lock.
var ErrLocked = errors.New("held by another process")

// Lock takes the exclusive flock on dir's lock file without waiting, and
// returns the open file that holds it: closing it releases the lock. With
// create, a missing lock file is made (the bridge); without, a missing one
// is an error for which errors.Is(err, fs.ErrNotExist) holds (a tool run
// as root, which must not leave a file the bridge's user cannot open). A
// lock held elsewhere is ErrLocked.
func Lock(dir string, create bool) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	// Not through a symlink, and never blocking on a FIFO: a tool run as
	// root must not be led to open (and hang on, or arm) another file.
	flag := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	if create {
		flag = os.O_RDWR | os.O_CREATE | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s: not a regular file (%v)", path, st.Mode().Type())
		}
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("%s: flock: %w", path, err)
	}
	return f, nil
}
