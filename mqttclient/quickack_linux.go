package mqttclient

import "syscall"

// quickAck sends the ACK of what was just read now, and the next ones at
// once too, until the kernel turns delayed ACKs on again (see ackConn).
func quickAck(raw syscall.RawConn) {
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
