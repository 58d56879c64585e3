//go:build linux

package gpio

import (
	"strings"
	"testing"

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
