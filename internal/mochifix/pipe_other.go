//go:build !unix

package mochifix

import "net"

// connPair returns the two ends of an in-process pipe (net.Pipe: no
// buffers; see pipe_unix.go).
func connPair() (net.Conn, net.Conn, error) {
	c, s := net.Pipe()
	return c, s, nil
}
