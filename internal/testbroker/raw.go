package testbroker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Will is a CONNECT's last will, for RawConnect.
type Will struct {
	Topic   string
	Payload string
	Retain  bool
	QoS     byte
}

// RawConnect dials addr and sends one MQTT 3.1.1 CONNECT (with a will when
// will is not nil), written byte for byte, and reads the broker's answer:
// the CONNACK's return code (0: accepted). The connection stays open for the
// caller, who may drop it without a DISCONNECT (which makes the broker send
// the will). An error means no CONNACK came (the broker closed the
// connection, or the deadline passed).
func RawConnect(addr, clientID string, o ClientOptions, will *Will) (net.Conn, byte, error) {
	conn, err := net.DialTimeout("tcp", addr, ConnectTimeout)
	if err != nil {
		return nil, 0, err
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: clientID,
			Keepalive:        30,
			Clean:            true,
		},
	}
	if o.Username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.Username)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(o.Password)
	}
	if will != nil {
		pk.Connect.WillFlag, pk.Connect.WillTopic = true, will.Topic
		pk.Connect.WillPayload, pk.Connect.WillRetain, pk.Connect.WillQos = []byte(will.Payload), will.Retain, will.QoS
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		_ = conn.Close()
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Now().Add(ConnectTimeout))
	if _, err := conn.Write(buf.Bytes()); err != nil {
		_ = conn.Close()
		return nil, 0, err
	}
	code, err := readConnack(conn)
	_ = conn.SetDeadline(time.Time{})
	if err != nil {
		_ = conn.Close()
		return nil, 0, err
	}
	return conn, code, nil
}

// readConnack reads a 3.1.1 CONNACK (4 bytes) and returns its return code.
func readConnack(conn net.Conn) (byte, error) {
	var b [4]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return 0, fmt.Errorf("no CONNACK: %w", err)
	}
	if b[0]>>4 != packets.Connack || b[1] != 2 {
		return 0, errors.New("the broker's answer is not a CONNACK")
	}
	return b[3], nil
}

// Drop closes conn with a TCP reset, as a crashed client's: the broker sends
// the client's will.
func Drop(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
