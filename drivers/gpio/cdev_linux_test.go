//go:build linux

package gpio

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
)

// The output request must carry the initial level, so the kernel switches
// the line to output already at that level.
func TestOutputRequestCarriesInitialLevel(t *testing.T) {
	for _, initial := range []bool{false, true} {
		r := outputRequest(17, initial, "doorbridge/relays")
		if r.Num_lines != 1 || r.Offsets[0] != 17 {
			t.Fatalf("lines %d offset %d", r.Num_lines, r.Offsets[0])
		}
		if r.Config.Flags != lineFlagOutput {
			t.Errorf("flags %#x, want output only", r.Config.Flags)
		}
		if r.Config.Num_attrs != 1 {
			t.Fatalf("attrs %d", r.Config.Num_attrs)
		}
		a := r.Config.Attrs[0]
		if a.Attr.Id != unix.GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES || a.Mask != 1 {
			t.Errorf("attr %+v: want OUTPUT_VALUES for line 0", a)
		}
		if want := map[bool]uint64{false: 0, true: 1}[initial]; a.Attr.Flags != want {
			t.Errorf("initial %v: values %#x", initial, a.Attr.Flags)
		}
		if got := unix.ByteSliceToString(r.Consumer[:]); got != "doorbridge/relays" {
			t.Errorf("consumer %q", got)
		}
	}
}

func TestInputRequestFlags(t *testing.T) {
	for pull, want := range map[gpio.Pull]uint64{
		gpio.PullNoChange: lineFlagInput,
		gpio.PullUp:       lineFlagInput | lineFlagBiasPullUp,
		gpio.PullDown:     lineFlagInput | lineFlagBiasPullDown,
		gpio.Float:        lineFlagInput | lineFlagBiasDisabled,
	} {
		r := inputRequest(4, pull, gpio.NoEdge, strings.Repeat("x", 64))
		if r.Config.Flags != want || r.Config.Num_attrs != 0 {
			t.Errorf("pull %v: flags %#x attrs %d", pull, r.Config.Flags, r.Config.Num_attrs)
		}
		if r.Consumer[len(r.Consumer)-1] != 0 {
			t.Error("consumer not NUL-terminated")
		}
	}
	if r := inputRequest(4, gpio.PullUp, gpio.BothEdges, "x"); r.Config.Flags != lineFlagInput|lineFlagBiasPullUp|lineFlagEdgeRising|lineFlagEdgeFalling {
		t.Errorf("both edges: flags %#x", r.Config.Flags)
	}
}

// pipeLine is a cdevLine whose request descriptor is the read end of a
// pipe, so tests can write edge events (or parts of them) into it.
func pipeLine(t *testing.T) (*cdevLine, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[1]) })
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	l := &cdevLine{chip: &chip{}, fd: p[0], wake: wake, dir: dirIn}
	t.Cleanup(func() { _ = l.Close() })
	return l, p[1]
}

func writeEvent(t *testing.T, fd int, id, seq uint32) {
	t.Helper()
	ev := unix.GPIOV2LineEvent{Id: id, Line_seqno: seq, Seqno: seq}
	if _, err := unix.Write(fd, unsafe.Slice((*byte)(unsafe.Pointer(&ev)), unsafe.Sizeof(ev))); err != nil {
		t.Fatal(err)
	}
}

// TestEdgeReadDoesNotBlock: poll may say readable and the event be gone by
// the read (a second reader, a spurious wake-up); the descriptor is
// non-blocking, so the read returns "no edge" instead of blocking, which
// would hold Close (and the bridge's stop) for ever.
func TestEdgeReadDoesNotBlock(t *testing.T) {
	l, _ := pipeLine(t)
	if err := nonblocking(l.fd); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, ok, err := l.readEvent(l.fd)
		if ok {
			err = errors.New("an edge from an empty descriptor")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a hang, not a timing assertion
		t.Fatal("read of an empty edge descriptor blocked")
	}
}

// TestEdgeEventShortReadAndGaps: a read shorter than an event is an error,
// not an edge made of garbage; a gap in line_seqno counts lost events.
func TestEdgeEventShortReadAndGaps(t *testing.T) {
	l, w := pipeLine(t)
	writeEvent(t, w, unix.GPIO_V2_LINE_EVENT_RISING_EDGE, 1)
	writeEvent(t, w, unix.GPIO_V2_LINE_EVENT_FALLING_EDGE, 4)
	if lv, ok, err := l.WaitEdge(time.Minute); err != nil || !ok || lv != gpio.High {
		t.Fatalf("first event: %v %v %v, want high", lv, ok, err)
	}
	if lv, ok, err := l.WaitEdge(time.Minute); err != nil || !ok || lv != gpio.Low {
		t.Fatalf("second event: %v %v %v, want low", lv, ok, err)
	}
	if got := l.EdgesMissed(); got != 2 {
		t.Errorf("missed %d edge events between seqno 1 and 4, want 2", got)
	}
	if _, err := unix.Write(w, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := l.WaitEdge(time.Minute); ok || err == nil || !strings.Contains(err.Error(), "read edge event: 3 bytes, want") {
		t.Fatalf("short read: ok %v err %v, want an error", ok, err)
	}
}

// TestCloseDuringEdgeWait: Close ends a WaitEdge in progress (errLineClosed)
// and returns once no wait uses the descriptors: a stop never hangs on an
// input's watcher.
func TestCloseDuringEdgeWait(t *testing.T) {
	l, _ := pipeLine(t)
	if err := nonblocking(l.fd); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, _, err := l.WaitEdge(time.Hour)
		waiting <- err
	}()
	// Close may come before the wait registers or during its poll: either
	// way the wait ends with errLineClosed and Close returns.
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	for _, ch := range []chan error{waiting, closed} {
		select {
		case err := <-ch:
			if ch == waiting && !errors.Is(err, errLineClosed) {
				t.Errorf("WaitEdge after Close: %v, want errLineClosed", err)
			}
			if ch == closed && err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(10 * time.Second): // a hang, not a timing assertion
			t.Fatal("Close during an edge wait hung")
		}
	}
}
