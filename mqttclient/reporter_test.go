package mqttclient

import (
	"net/url"
	"syscall"
	"testing"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Each distinct reason is logged once per broker until a connection
// succeeds; every attempt is logged at debug level.
func TestReporterLogsEachReasonOnce(t *testing.T) {
	var logged, debugged []string
	r := NewReporter(func(broker, reason string) { logged = append(logged, broker+": "+reason) },
		func(broker, reason string) { debugged = append(debugged, broker+": "+reason) })
	refused := syscall.ECONNREFUSED
	for range 3 {
		r.Report("tcp://a:1883", refused)
	}
	r.Report("tcp://b:1883", refused)
	r.Report("tcp://b:1883", refused)
	if len(logged) != 2 || len(debugged) != 5 {
		t.Fatalf("logged %q, %d debug lines; want one line a broker, 5 debug lines", logged, len(debugged))
	}
	if want := "tcp://a:1883: connection refused: no broker listening at that address"; logged[0] != want {
		t.Fatalf("logged %q, want %q", logged[0], want)
	}
	r.Report("tcp://b:1883", nil)
	if got := r.Connected(); got != "tcp://b:1883" {
		t.Fatalf("Connected = %q, want the broker that accepted", got)
	}
	r.Report("tcp://a:1883", refused)
	if len(logged) != 3 {
		t.Fatalf("after a connection, the same reason is news again: logged %q", logged)
	}
}
