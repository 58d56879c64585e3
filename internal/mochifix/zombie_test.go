//go:build unix

package mochifix_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// A watched client whose peer stops reading while its socket still reads
// (half closed) is let go at its first failed write (review 12 major 2).
// mochi v2.7.9 ignores write errors and skips OnPacketSent for them: the
// client stayed connected, Flow's count for it stayed up, and every
// message for it (a safety publisher's too) waited a full Wait.
func TestFlowWriteErrorEndsWatchedClient(t *testing.T) {
	fb := startFlowBroker(t, time.Minute)
	sub, r := fb.watched(t)
	subscribeSettled(t, sub, r, "bulk/#")
	cl, ok := fb.srv.Clients.Get("watched")
	if !ok {
		t.Fatal("no watched client")
	}
	if err := sub.(*net.UnixConn).CloseRead(); err != nil {
		t.Fatal(err)
	}
	pub := rawClient(t, fb.addr, "publisher")
	msg := publishPacket("bulk/x", bytes.Repeat([]byte("x"), 1024), false)
	var all []byte
	for range flowQueueLen {
		all = append(all, msg...)
	}
	if _, err := pub.Write(all); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 20*time.Second, func() bool {
		c, ok := fb.srv.Clients.Get("watched")
		return !ok || c != cl || c.Closed()
	}, "the watched client let go after its writes failed (queued %d)", fb.flow.Queued(cl))
}
