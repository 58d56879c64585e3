package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// A console request that gave up waiting for a busy loop (its context
// ended) leaves nothing behind: when the loop gets to it later, it neither
// writes the caller's results (a data race under -race) nor publishes the
// drill alarm the owner was told had failed.
func TestConsoleDrillAbandonedDoesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	started, release := make(chan struct{}), make(chan struct{})
	h.b.events <- evFunc(func(*loop) { close(started); <-release })
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan Outcome, 1)
	go func() {
		out, _ := h.b.Act(ctx, Action{Kind: "drill", Request: "ON", Origin: "console:test"})
		res <- out
	}()
	testbroker.Eventually(t, wait, func() bool { return len(h.b.events) > 0 }, "the drill is queued")
	cancel()
	if out := <-res; out.OK {
		t.Fatalf("an abandoned drill answered %+v", out)
	}
	close(release)
	if err := h.b.onLoop(context.Background(), func(*loop) {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) && h.power("0") {
		time.Sleep(10 * time.Millisecond) // watching for something that must not happen
	}
	for _, m := range h.c.Messages(h.alarmTopic()) {
		if string(m.Payload) == "ON" {
			t.Fatal("the abandoned drill published the alarm")
		}
	}
	if !h.power("0") {
		t.Fatal("the abandoned drill released the maglock")
	}
}
