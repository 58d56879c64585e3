//go:build !linux

package nuttest

import "os/exec"

// orphanKill does nothing where the kernel has no parent-death signal.
func orphanKill(*exec.Cmd) {}
