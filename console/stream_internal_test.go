package console

import (
	"context"
	"encoding/json"
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
