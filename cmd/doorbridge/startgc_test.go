package main

import (
	"runtime/debug"
	"testing"
)

// The collector is off only until the relays are off, and comes back as
// GOGC (or SetGCPercent) had it, including off.
func TestNoGCUntilOffRestoresGOGC(t *testing.T) {
	orig := debug.SetGCPercent(37)
	defer debug.SetGCPercent(orig)
	restore := noGCUntilOff()
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("during start-up the GC percent is %d, want -1 (off)", got)
	}
	restore()
	if got := debug.SetGCPercent(37); got != 37 {
		t.Errorf("after start-up the GC percent is %d, want GOGC's 37", got)
	}
	debug.SetGCPercent(-1) // GOGC=off stays off
	noGCUntilOff()()
	if got := debug.SetGCPercent(orig); got != -1 {
		t.Errorf("with GOGC=off the GC percent after start-up is %d, want -1", got)
	}
}
