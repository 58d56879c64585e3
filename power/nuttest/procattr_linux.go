package nuttest

import (
	"os/exec"
	"syscall"
)

// orphanKill makes the kernel kill a daemon if the test binary dies without
// running its cleanups (a panic in another goroutine, go test's -timeout).
func orphanKill(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
