package vmgpio

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Line info flags of the GPIO v2 uAPI (linux/gpio.h).
const (
	lineUsed         = 1 << 0
	lineOutput       = 1 << 3
	lineEdgeRising   = 1 << 4
	lineEdgeFalling  = 1 << 5
	lineBiasPullUp   = 1 << 8
	lineBiasPullDown = 1 << 9
)

// lineInfo asks the kernel whether line offset of chip is requested as an
// output, and by whom.
type lineInfo struct{ f *os.File }

func openLineInfo(t *testing.T, chip string) *lineInfo {
	t.Helper()
	f, err := os.OpenFile("/dev/"+chip, os.O_RDWR, 0)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	return &lineInfo{f: f}
}

// output reports whether the line is requested as an output, and its
// consumer. A failed ioctl is an error, never "not an output".
func (li *lineInfo) output(offset int) (bool, string, error) {
	info, err := li.info(offset)
	return info.Flags&lineUsed != 0 && info.Flags&lineOutput != 0, unix.ByteSliceToString(info.Consumer[:]), err
}

// info is the kernel's line info of offset.
func (li *lineInfo) info(offset int) (unix.GPIOV2LineInfo, error) {
	info := unix.GPIOV2LineInfo{Offset: uint32(offset)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, li.f.Fd(), unix.GPIO_V2_GET_LINEINFO_IOCTL, uintptr(unsafe.Pointer(&info))); e != 0 {
		return info, fmt.Errorf("GPIO_V2_GET_LINEINFO of line %d: %w", offset, e)
	}
	return info, nil
}

// holdRequests copies every GPIO line request of process pid into this
// process (pidfd_getfd), so that the lines stay requested, at the level the
// process last drove, after it exits: what a Raspberry Pi kernel does with a
// released output. release closes the copies: the lines fall to their pull.
func holdRequests(t *testing.T, pid int) (release func()) {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	must(t, err)
	defer unix.Close(pidfd)
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	must(t, err)
	var fds []int
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.Contains(target, "gpio-line") {
			continue
		}
		n, _ := strconv.Atoi(e.Name())
		fd, err := unix.PidfdGetfd(pidfd, n, 0)
		must(t, err)
		fds = append(fds, fd)
	}
	if len(fds) == 0 {
		t.Fatalf("process %d holds no GPIO line request (%s)", pid, dir)
	}
	released := false
	release = func() {
		if !released {
			released = true
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	t.Cleanup(release)
	return release
}
