package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// The binary does not re-read the cgroup CPU limit every second (an idle
// bridge's wake-up for nothing): main.go's //go:debug updatemaxprocs=0 is
// in the build, which the test binary of this package shares.
func TestBuildKeepsGOMAXPROCSFromStart(t *testing.T) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	for _, s := range info.Settings {
		if s.Key == "DefaultGODEBUG" && strings.Contains(s.Value, "updatemaxprocs=0") {
			return
		}
	}
	t.Fatalf("DefaultGODEBUG of the build lacks updatemaxprocs=0: %v", info.Settings)
}
