//go:build !linux

package bridge

import "syscall"

// quickAck does nothing where TCP_QUICKACK does not exist.
func quickAck(syscall.RawConn) {}
