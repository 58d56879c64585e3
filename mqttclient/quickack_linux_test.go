package mqttclient

import (
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestBrokerConnectionAcksAtOnce checks that the bridge's connection to a
// broker leaves delayed ACKs off after every read, even once the exchange
// has turned interactive (which turns them on). A broker with Nagle on
// (stock mosquitto) otherwise holds the next command until the bridge's
// delayed ACK of its last PUBACK: ~40 ms (see ackConn).
func TestBrokerConnectionAcksAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &dialer{timeout: 5e9, maxPacket: packetLimit(DefaultMaxPayload)}
	u, _ := url.Parse("tcp://" + ln.Addr().String())
	conn, err := d.open(u, paho.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	broker, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	tcp := unwrapTCP(t, conn)
	buf, puback := make([]byte, 1), make([]byte, 4)
	for i := range 20 {
		// The broker answers what the bridge sent with a PUBACK (whole MQTT
		// packets: the bridge's reader parses them): the bridge sends right
		// after it receives, so Linux sees it interactive.
		if _, err := conn.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(broker, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := broker.Write([]byte{0x40, 0x02, 0x00, byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, puback); err != nil {
			t.Fatal(err)
		}
		if q := quickAckOn(t, tcp); !q {
			t.Fatalf("exchange %d: delayed ACKs are on again after a read (TCP_QUICKACK reads 0)", i)
		}
	}
}

func unwrapTCP(t *testing.T, c net.Conn) *net.TCPConn {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x
		case *Conn:
			c = x.Conn
		case *ackConn:
			return x.TCPConn
		default:
			t.Fatalf("unexpected connection type %T", c)
		}
	}
}

// quickAckOn reads TCP_QUICKACK: 1 while delayed ACKs are off.
func quickAckOn(t *testing.T, c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v == 1
}
