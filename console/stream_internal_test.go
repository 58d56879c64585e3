package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/bridge"
)

// viewBridge answers ConsoleView with the next relock_in it is given.
type viewBridge struct{ relockIn chan float64 }

func (v *viewBridge) ConsoleView(context.Context) (*bridge.ConsoleView, error) {
	return &bridge.ConsoleView{RelockIn: <-v.relockIn}, nil
}
func (v *viewBridge) Act(context.Context, bridge.Action) (bridge.Outcome, error) {
	return bridge.Outcome{}, nil
}
func (v *viewBridge) RecentEvents(string, int) []audit.Event { return nil }
func (v *viewBridge) AuditSeq() uint64                       { return 0 }
func (v *viewBridge) Doors() []string                        { return nil }

// A page that does not keep up gets the newest state, not an old one
// while the newer ones are dropped.
func TestHubSlowStreamGetsTheLatest(t *testing.T) {
	vb := &viewBridge{relockIn: make(chan float64, 3)}
	h := newHub(vb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ch := newStream()
	h.clients[ch] = true // joined without starting the poller: the test publishes
	for _, s := range []float64{1, 2, 3} {
		vb.relockIn <- s
		h.publish(context.Background())
	}
	var u struct {
		View bridge.ConsoleView `json:"view"`
	}
	if err := json.Unmarshal(<-ch, &u); err != nil {
		t.Fatal(err)
	}
	if u.View.RelockIn != 3 {
		t.Fatalf("a slow stream reads the state with relock_in %v, want the latest (3)", u.View.RelockIn)
	}
}

// M-D: four addresses no longer take every stream. A client may hold
// streamsPerClient; when all are taken a newcomer takes the newest stream
// of the client holding the most, so keeping honest pages out needs
// maxStreams distinct addresses.
func TestStreamsFullEvictTheBiggestHolder(t *testing.T) {
	s := newStreamLimits()
	var slots []*streamSlot
	for i := range 4 {
		for range s.max {
			if slot, why := s.open(fmt.Sprint("attacker ", i)); why == "" {
				slots = append(slots, slot)
			}
		}
	}
	if len(slots) != 4*streamsPerClient {
		t.Fatalf("four addresses took %d streams, want %d", len(slots), 4*streamsPerClient)
	}
	for i := 0; s.total < s.max; i++ {
		if _, why := s.open(fmt.Sprint("more ", i)); why != "" {
			t.Fatalf("free stream refused: %s", why)
		}
	}
	owner, why := s.open("owner")
	if why != "" {
		t.Fatalf("the owner's page with every stream taken: %s, want one evicted for it", why)
	}
	evicted := 0
	for _, sl := range slots {
		select {
		case <-sl.evicted:
			evicted++
		default:
		}
	}
	if evicted != 1 || s.total != s.max {
		t.Fatalf("%d streams evicted, total %d: want 1 and %d", evicted, s.total, s.max)
	}
	// A client with one stream is not evicted for another with none.
	for i := 0; ; i++ {
		if _, why := s.open(fmt.Sprint("spread ", i)); why != "" {
			break
		}
	}
	select {
	case <-owner.evicted:
		t.Fatal("the owner's only stream was evicted")
	default:
	}
}
