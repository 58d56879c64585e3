//go:build linux

package gpio

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"github.com/doorbridge/doorbridge/drivers"
)

// Line flags of the GPIO v2 uAPI (linux/gpio.h); golang.org/x/sys/unix has
// the structs and ioctl numbers but not these.
const (
	lineFlagInput        = 1 << 2
	lineFlagOutput       = 1 << 3
	lineFlagEdgeRising   = 1 << 4
	lineFlagEdgeFalling  = 1 << 5
	lineFlagBiasPullUp   = 1 << 8
	lineFlagBiasPullDown = 1 << 9
	lineFlagBiasDisabled = 1 << 10
)

type lineDir int

const (
	dirNone lineDir = iota
	dirIn
	dirOut
)

// cdevLine is one line of a GPIO chip, requested from the kernel on its first
// Out or In. It implements gpio.PinIO so the driver's line logic is the same
// as on periph's test pins.
type cdevLine struct {
	chip     *chip
	offset   uint32
	name     string
	consumer string

	mu    sync.Mutex
	fd    int // line request handle, -1 until requested
	dir   lineDir
	pull  gpio.Pull
	wake  int // eventfd that ends WaitEdge on Close; -1 without edges
	waits sync.WaitGroup

	seq    uint32        // line_seqno of the last edge event read
	stamp  time.Duration // its kernel timestamp (CLOCK_MONOTONIC)
	missed int           // edge events the kernel dropped (gaps in line_seqno)
}

// String implements conn.Resource: it names the physical line.
func (l *cdevLine) String() string {
	if l.name == "" {
		return fmt.Sprintf("offset %d on %s", l.offset, l.chip)
	}
	return fmt.Sprintf("%q (offset %d) on %s", l.name, l.offset, l.chip)
}

// Name implements pin.Pin.
func (l *cdevLine) Name() string { return l.name }

// Number implements pin.Pin: the line offset on its chip.
func (l *cdevLine) Number() int { return int(l.offset) }

// Function implements pin.Pin.
func (l *cdevLine) Function() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.dir {
	case dirIn:
		return string(gpio.IN)
	case dirOut:
		return string(gpio.OUT)
	}
	return ""
}

// Halt implements conn.Resource. It has nothing to stop.
func (l *cdevLine) Halt() error { return nil }

// Out implements gpio.PinOut. The first call requests the line as an output
// whose first level is lv, in one ioctl; later calls set the value.
func (l *cdevLine) Out(lv gpio.Level) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.dir {
	case dirOut:
		v := unix.GPIOV2LineValues{Mask: 1}
		if lv {
			v.Bits = 1
		}
		if err := ioctl(l.fd, unix.GPIO_V2_LINE_SET_VALUES_IOCTL, unsafe.Pointer(&v)); err != nil {
			return fmt.Errorf("set value: %w", err)
		}
		return nil
	case dirIn:
		return errors.New("line is requested as an input")
	}
	req := outputRequest(l.offset, bool(lv), l.consumer)
	if err := l.request(&req); err != nil {
		return err
	}
	l.dir = dirOut
	return nil
}

// In implements gpio.PinIn. Only the first call configures the line. With
// edge BothEdges (or RisingEdge, FallingEdge) the kernel reports edges,
// which WaitEdge and WaitForEdge read; a chip without interrupts refuses
// the request and the line stays unrequested.
func (l *cdevLine) In(pull gpio.Pull, edge gpio.Edge) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir != dirNone {
		return errors.New("line is already requested")
	}
	wake := -1
	if edge != gpio.NoEdge {
		var err error
		if wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			return fmt.Errorf("eventfd: %w", err)
		}
	}
	req := inputRequest(l.offset, pull, edge, l.consumer)
	err := l.request(&req)
	if err == nil && wake >= 0 {
		if err = nonblocking(l.fd); err != nil {
			unix.Close(l.fd)
			l.fd = -1
		}
	}
	if err != nil {
		if wake >= 0 {
			unix.Close(wake)
		}
		return err
	}
	l.dir, l.pull, l.wake = dirIn, pull, wake
	return nil
}

// nonblocking makes reads of an edge event descriptor return EAGAIN
// instead of waiting: poll may say readable and the event be gone by the
// read (a spurious wake-up, a second reader), and a read blocked there would
// hold Close, and the bridge's stop, for ever.
func nonblocking(fd int) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("edge events: non-blocking: %w", err)
	}
	return nil
}

// WaitEdge waits up to timeout for the line's next edge event and returns
// the level after it: high after a rising edge, low after a falling one.
// ok is false when none came. It returns errLineClosed once Close runs.
func (l *cdevLine) WaitEdge(timeout time.Duration) (gpio.Level, bool, error) {
	l.mu.Lock()
	fd, wake := l.fd, l.wake
	if fd < 0 {
		l.mu.Unlock()
		return gpio.Low, false, errLineClosed
	}
	if wake < 0 {
		l.mu.Unlock()
		return gpio.Low, false, errors.New("edge events not requested")
	}
	// Close waits for this wait before it closes the descriptors.
	l.waits.Add(1)
	l.mu.Unlock()
	defer l.waits.Done()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(timeout.Milliseconds()))
	switch {
	case errors.Is(err, unix.EINTR):
		return gpio.Low, false, nil
	case err != nil:
		return gpio.Low, false, fmt.Errorf("poll: %w", err)
	case fds[1].Revents != 0:
		return gpio.Low, false, errLineClosed
	case n == 0:
		return gpio.Low, false, nil
	}
	return l.readEvent(fd)
}

// readEvent reads one edge event from the request's descriptor (non
// blocking): ok is false when none is there.
func (l *cdevLine) readEvent(fd int) (gpio.Level, bool, error) {
	var ev unix.GPIOV2LineEvent
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&ev)), unsafe.Sizeof(ev))
	n, err := unix.Read(fd, buf)
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return gpio.Low, false, nil
	case err != nil:
		return gpio.Low, false, fmt.Errorf("read edge event: %w", err)
	case n != len(buf):
		return gpio.Low, false, fmt.Errorf("read edge event: %d bytes, want %d", n, len(buf))
	}
	l.mu.Lock()
	if l.seq != 0 && ev.Line_seqno > l.seq+1 {
		// The kernel's event buffer overflowed: edges were lost.
		l.missed += int(ev.Line_seqno - l.seq - 1)
	}
	l.seq, l.stamp = ev.Line_seqno, time.Duration(ev.Timestamp_ns)
	l.mu.Unlock()
	return ev.Id == unix.GPIO_V2_LINE_EVENT_RISING_EDGE, true, nil
}

// EdgeTime implements edgeStamper: the kernel's timestamp of the last edge
// read (CLOCK_MONOTONIC, the default event clock of a line request).
func (l *cdevLine) EdgeTime() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stamp
}

// monotonic reads CLOCK_MONOTONIC, the clock of edge event timestamps; 0
// when it cannot.
func monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// EdgesMissed implements edgeCounter: edge events the kernel dropped.
func (l *cdevLine) EdgesMissed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.missed
}

// request claims the line from the kernel.
func (l *cdevLine) request(req *unix.GPIOV2LineRequest) error {
	err := ioctl(l.chip.fd, unix.GPIO_V2_GET_LINE_IOCTL, unsafe.Pointer(req))
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("request: held by %q, another process or driver (gpioinfo lists who holds which line): %w", l.consumerNow(), errBusy{})
	}
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	l.fd = int(req.Fd)
	return nil
}

// errBusy is a line held elsewhere: drivers.ErrChannelBusy and EBUSY.
type errBusy struct{}

func (errBusy) Error() string { return "busy" }

func (errBusy) Is(target error) bool {
	return target == drivers.ErrChannelBusy || target == unix.EBUSY
}

// consumerNow asks the kernel who holds the line.
func (l *cdevLine) consumerNow() string {
	info := unix.GPIOV2LineInfo{Offset: l.offset}
	if err := ioctl(l.chip.fd, unix.GPIO_V2_GET_LINEINFO_IOCTL, unsafe.Pointer(&info)); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(info.Consumer[:])
}

// ReadLevel reads the line, reporting a failed read.
func (l *cdevLine) ReadLevel() (gpio.Level, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir == dirNone {
		return gpio.Low, errors.New("line is not requested")
	}
	v := unix.GPIOV2LineValues{Mask: 1}
	if err := ioctl(l.fd, unix.GPIO_V2_LINE_GET_VALUES_IOCTL, unsafe.Pointer(&v)); err != nil {
		return gpio.Low, fmt.Errorf("get value: %w", err)
	}
	return v.Bits&1 == 1, nil
}

// Read implements gpio.PinIn. It reads Low on error; the driver uses
// ReadLevel.
func (l *cdevLine) Read() gpio.Level {
	lv, _ := l.ReadLevel()
	return lv
}

// WaitForEdge implements gpio.PinIn: it reports whether an edge event came
// within timeout (0 waits a very long time). The driver uses WaitEdge,
// which also says which edge.
func (l *cdevLine) WaitForEdge(timeout time.Duration) bool {
	if timeout == 0 {
		timeout = 24 * time.Hour
	}
	_, ok, _ := l.WaitEdge(timeout)
	return ok
}

// Pull implements gpio.PinIn: the bias requested.
func (l *cdevLine) Pull() gpio.Pull {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pull
}

// DefaultPull implements gpio.PinIn. The GPIO uAPI cannot report it.
func (l *cdevLine) DefaultPull() gpio.Pull { return gpio.PullNoChange }

// PWM implements gpio.PinOut. It is not supported.
func (l *cdevLine) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("PWM is not supported")
}

// Close releases the line to the kernel. A WaitEdge in progress returns
// errLineClosed first: the descriptors close only once no wait uses them.
func (l *cdevLine) Close() error {
	l.mu.Lock()
	fd, wake := l.fd, l.wake
	l.fd, l.wake, l.dir = -1, -1, dirNone
	l.mu.Unlock()
	if fd < 0 {
		return nil
	}
	if wake >= 0 {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		_, _ = unix.Write(wake, one)
		l.waits.Wait()
		unix.Close(wake)
	}
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("line %s: release: %w", l, err)
	}
	return nil
}

// outputRequest is the GPIO_V2_GET_LINE request of one output line whose
// first level is initial: the OUTPUT_VALUES attribute makes the kernel set the
// value before it switches the line to output.
func outputRequest(offset uint32, initial bool, consumer string) unix.GPIOV2LineRequest {
	r := lineRequest(offset, consumer)
	r.Config.Flags = lineFlagOutput
	r.Config.Num_attrs = 1
	r.Config.Attrs[0].Attr.Id = unix.GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
	if initial {
		r.Config.Attrs[0].Attr.Flags = 1 // the union's "values" bitmap
	}
	r.Config.Attrs[0].Mask = 1 // applies to the request's line 0
	return r
}

// inputRequest is the GPIO_V2_GET_LINE request of one input line, with
// edge detection when edge is not NoEdge.
func inputRequest(offset uint32, pull gpio.Pull, edge gpio.Edge, consumer string) unix.GPIOV2LineRequest {
	r := lineRequest(offset, consumer)
	r.Config.Flags = lineFlagInput
	switch edge {
	case gpio.RisingEdge:
		r.Config.Flags |= lineFlagEdgeRising
	case gpio.FallingEdge:
		r.Config.Flags |= lineFlagEdgeFalling
	case gpio.BothEdges:
		r.Config.Flags |= lineFlagEdgeRising | lineFlagEdgeFalling
	}
	switch pull {
	case gpio.PullUp:
		r.Config.Flags |= lineFlagBiasPullUp
	case gpio.PullDown:
		r.Config.Flags |= lineFlagBiasPullDown
	case gpio.Float:
		r.Config.Flags |= lineFlagBiasDisabled
	}
	return r
}

func lineRequest(offset uint32, consumer string) unix.GPIOV2LineRequest {
	var r unix.GPIOV2LineRequest
	r.Offsets[0] = offset
	r.Num_lines = 1
	copy(r.Consumer[:len(r.Consumer)-1], consumer) // keep the NUL
	return r
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

var (
	_ gpio.PinIO  = (*cdevLine)(nil)
	_ levelReader = (*cdevLine)(nil)
	_ edgeWaiter  = (*cdevLine)(nil)
	_ edgeCounter = (*cdevLine)(nil)
	_ edgeStamper = (*cdevLine)(nil)
	_ Lines       = (*chipLines)(nil)
)
