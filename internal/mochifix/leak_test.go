package mochifix_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// listener's accept loop and connection goroutines must end with Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
