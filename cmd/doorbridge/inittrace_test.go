package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// initBudget is what one of doorbridge's own packages may allocate at
// package init. Every start pays for package init before main() runs, and
// so before the relays' off writes: a regexp compiled or a table built
// into a package-level var costs several kB and a good part of a
// millisecond there (build them on first use: sync.OnceValue).
const initBudget = 4096

// Package init is counted in bytes and allocations (GODEBUG=inittrace=1),
// never in time: this machine's clock says nothing reliable.
func TestPackageInitIsCheap(t *testing.T) {
	cmd := exec.Command(binary, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("version: %v\n%s", err, stderr.Bytes())
	}
	seen := 0
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		// init github.com/doorbridge/doorbridge/config @38 ms, 0.01 ms clock, 0 bytes, 0 allocs
		f := strings.Fields(sc.Text())
		if len(f) < 11 || f[0] != "init" || f[1] != "main" && !strings.HasPrefix(f[1], "github.com/doorbridge/doorbridge/") {
			continue
		}
		seen++
		n, err := strconv.Atoi(f[7])
		if err != nil || f[8] != "bytes," {
			t.Fatalf("cannot read %q", sc.Text())
		}
		if n > initBudget {
			t.Errorf("%s allocates %d bytes at package init (at most %d): %s", f[1], n, initBudget, sc.Text())
		}
	}
	if seen == 0 {
		t.Fatalf("no init line of a doorbridge package in the trace:\n%s", stderr.Bytes())
	}
}
