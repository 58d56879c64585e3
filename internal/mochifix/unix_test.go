package mochifix_test

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/doorbridge/doorbridge/internal/mochifix"
)

// TestUnixSocketNeverWiderThanItsMode watches the socket's path while it is
// created under an open umask (0, as in some containers): the path must
// never be seen with a mode wider than the one asked for, not even between
// the bind and the chmod.
func TestUnixSocketNeverWiderThanItsMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "mqtt.sock")
	const perm = 0o660
	var wider atomic.Uint32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm()&^perm != 0 {
				wider.Store(uint32(fi.Mode().Perm()))
			}
		}
	}()
	for i := 0; i < 300 && wider.Load() == 0; i++ {
		l, err := mochifix.ListenUnix("unix", path, perm)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Perm() != perm {
			t.Fatalf("after ListenUnix: %v, %v; want mode %o", fi, err, perm)
		}
		l.CloseAll(false)
	}
	close(stop)
	<-done
	if m := wider.Load(); m != 0 {
		t.Fatalf("the socket was seen with mode %o, wider than %o", m, perm)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}
