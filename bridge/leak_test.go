package bridge

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them.
//
// One library goroutine is let go: paho's Disconnect sends DISCONNECT from a
// goroutine of its own and may return before it finishes (paho documents
// this). Stopped in its select, that goroutine always ends when its quiesce
// timer fires (250 ms for the bridge and the test clients), but on a loaded
// machine it can still be there when the last test returns. A Disconnect
// stuck anywhere else would have another top function and still be reported.
// (Stack traces escape the dots of the module path, hence the %2e.)
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).Disconnect.func1"))
}
