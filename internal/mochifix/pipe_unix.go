//go:build unix

package mochifix

import (
	"net"
	"os"
	"syscall"
)

// connPair returns the two ends of an anonymous Unix socket pair: an
// in-process connection with kernel buffers both ways, like the TCP one
// it replaces. net.Pipe has none: a write waits for the other end's read,
// so when the broker writes to the bridge (a retained message, an ack)
// while the bridge writes to the broker, and paho's reader waits on its
// own writer, both ends stall until a write deadline ends the connection
// (on a loaded machine, one connection after another).
func connPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, err
	}
	c, err := fileConn(fds[0], "mochifix-pipe-client")
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	s, err := fileConn(fds[1], "mochifix-pipe-server")
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

// fileConn makes fd a net.Conn and closes fd (the conn holds a copy).
func fileConn(fd int, name string) (net.Conn, error) {
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return net.FileConn(f)
}
