package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/prometheus/client_golang/prometheus"
)

// notReady is a bridge whose loop is stuck and whose link is down.
type notReady struct{ fakeBridge }

func (notReady) Healthy() bool { return false }
func (notReady) Ready() bool   { return false }

// Each route answers what the bridge says, JSON as JSON (nosniff), an
// unhealthy or unready bridge as 503, and an empty door list as [] (a
// client iterates it), never null.
func TestHandlerRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "doorbridge_test_total"}))
	cases := []struct {
		b        Bridge
		path     string
		code     int
		body     string
		jsonResp bool
	}{
		{fakeBridge{reg}, "/healthz", 200, "ok\n", false},
		{fakeBridge{reg}, "/readyz", 200, "ok\n", false},
		{notReady{fakeBridge{reg}}, "/healthz", 503, "control loop not responding\n", false},
		{notReady{fakeBridge{reg}}, "/readyz", 503, "not ready: not connected, or still starting\n", false},
		{fakeBridge{reg}, "/api/v1/doors", 200, "[]\n", true},
		{fakeBridge{reg}, "/api/v1/state", 200, "null\n", true},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		Handler(c.b).ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.code || rec.Body.String() != c.body {
			t.Errorf("%T %s: %d %q, want %d %q", c.b, c.path, rec.Code, rec.Body, c.code, c.body)
		}
		if c.jsonResp && (rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Content-Type-Options") != "nosniff") {
			t.Errorf("%s headers: %v, want application/json and nosniff", c.path, rec.Header())
		}
	}
	rec := httptest.NewRecorder()
	Handler(fakeBridge{reg}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "doorbridge_test_total 0") {
		t.Errorf("/metrics does not serve the bridge's registry:\n%s", rec.Body)
	}
}

var _ Bridge = (*bridge.Bridge)(nil) // the bridge is what the server serves
