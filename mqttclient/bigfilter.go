package mqttclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// paho has no limit on the size of a packet it reads: it allocates what the
// header declares and reads it whole, so a 150 MB message on a topic the
// bridge subscribes to costs 150 MB before any callback could refuse it
// (issue 12 item 5). packetFilter sits under paho, on the connection's
// read side, and replaces every PUBLISH larger than maxPacket by a small
// PUBLISH on oversizedTopic + its topic, with no payload, the same flags
// and the same packet id (paho still acknowledges it, so a QoS 1 flow is
// not stalled); the large payload is skipped through the read buffer,
// never held in memory. The bridge's callback counts it (inbound.oversized).
type packetFilter struct {
	rd      *bufio.Reader
	max     int    // the largest remaining length passed through
	left    int    // bytes of the current packet still to pass through
	pending []byte // a replacement packet, not yet read by paho
}

// packetLimit is the largest PUBLISH passed to paho whole: any topic with
// a payload of at most maxPayload; the callback still checks the payload.
func packetLimit(maxPayload int) int { return maxPayload + 2 + 1<<16 + 2 }

// OversizedTopic prefixes the topic of a replaced PUBLISH (a topic the
// bridge never subscribes to, so nothing else can arrive on it).
const OversizedTopic = "$doorbridge/oversized/"

// maxKeptTopic is the longest topic kept in a replacement; a longer one
// is junk, whatever it is.
const maxKeptTopic = 1024

var errMalformed = errors.New("mqtt: malformed packet from the broker")

func (f *packetFilter) read(p []byte) (int, error) {
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	if f.left == 0 {
		if err := f.next(); err != nil {
			return 0, err
		}
		if len(f.pending) > 0 {
			return f.read(p)
		}
	}
	n, err := f.rd.Read(p[:min(len(p), f.left)])
	f.left -= n
	return n, err
}

// next reads the next packet's fixed header and lets the packet through,
// or replaces it.
func (f *packetFilter) next() error {
	first, hlen, rem, err := f.header()
	if err != nil {
		return err
	}
	if first>>4 != packets.Publish || rem <= f.max {
		f.left = hlen + rem
		return nil
	}
	return f.replace(first, hlen, rem)
}

// header peeks at a fixed header: its first byte, its length and the
// remaining length it declares. Every packet has at least two bytes, and
// a continuation bit promises the next: Peek never waits for bytes that
// may not come.
func (f *packetFilter) header() (first byte, hlen, rem int, err error) {
	for n := 2; n <= 5; n++ {
		b, err := f.rd.Peek(n)
		if err != nil {
			return 0, 0, 0, err
		}
		if b[n-1]&0x80 == 0 {
			mul := 1
			for _, c := range b[1:n] {
				rem += int(c&0x7f) * mul
				mul *= 128
			}
			return b[0], n, rem, nil
		}
	}
	return 0, 0, 0, errMalformed
}

// replace skips an oversized PUBLISH and queues its replacement.
func (f *packetFilter) replace(first byte, hlen, rem int) error {
	if _, err := f.rd.Discard(hlen); err != nil {
		return err
	}
	b, err := f.rd.Peek(2)
	if err != nil {
		return err
	}
	tlen := int(binary.BigEndian.Uint16(b))
	f.rd.Discard(2)
	topic := ""
	if tlen <= maxKeptTopic {
		if b, err = f.rd.Peek(tlen); err != nil {
			return err
		}
		topic = string(b)
	}
	if _, err := f.rd.Discard(tlen); err != nil {
		return err
	}
	used := 2 + tlen
	out := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	out.Dup, out.Qos, out.Retain = first&0x08 != 0, (first>>1)&3, first&1 != 0
	if out.Qos > 0 {
		if b, err = f.rd.Peek(2); err != nil {
			return err
		}
		out.MessageID = binary.BigEndian.Uint16(b)
		f.rd.Discard(2)
		used += 2
	}
	if rem < used {
		return errMalformed
	}
	if _, err := f.rd.Discard(rem - used); err != nil {
		return err
	}
	out.TopicName = OversizedTopic + topic
	var buf bytes.Buffer
	if err := out.Write(&buf); err != nil {
		return err
	}
	f.pending = buf.Bytes()
	return nil
}
