package testbroker

import (
	"fmt"
	"testing"
	"time"
)

// pollInterval is how often Eventually evaluates its condition.
const pollInterval = 5 * time.Millisecond

// Eventually evaluates cond every few milliseconds until it returns true, and fails the test with
// the message format/args if it has not by timeout (cond is evaluated one last time at the
// deadline). Use it for in-memory conditions that have no notification to wait on; never sleep a
// fixed time and then assert.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if cond() {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("testbroker: not true within %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		<-ticker.C
	}
}
