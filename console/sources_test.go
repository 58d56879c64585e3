package console_test

import (
	"fmt"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// An alarm entry with a wildcard may have thousands of sources: the view
// lists a bounded number of them, those in alarm first, and counts the
// rest.
func TestConsoleViewBoundsTheSources(t *testing.T) {
	e := newEnvWith(t, config.ConsoleReadOnly, func(c *config.Config) {
		c.Alarms = append(c.Alarms, config.Alarm{Topic: "db/smoke/+", PayloadOn: "ON", PayloadOff: "OFF", MaxSources: 500})
	})
	const n = 120
	for i := range n {
		e.c.Publish(fmt.Sprintf("db/smoke/s%03d", i), "OFF", true)
	}
	e.ready()
	e.c.Publish("db/smoke/s999", "ON", true)
	b := e.browser()
	var smoke map[string]any
	testbroker.Eventually(t, wait, func() bool {
		_, v := b.get("/console/api/view")
		for _, a := range v["alarms"].([]any) {
			if a := a.(map[string]any); a["topic"] == "db/smoke/+" {
				smoke = a
				counts, _ := a["counts"].(map[string]any)
				return counts["clear"] == float64(n) && counts["alarm"] == float64(1)
			}
		}
		return false
	}, "every smoke source counted")
	sources := smoke["sources"].(map[string]any)
	if len(sources) != 50 || smoke["sources_more"] != float64(n+1-50) {
		t.Errorf("the view lists %d sources, %v more; want 50 and %d more", len(sources), smoke["sources_more"], n+1-50)
	}
	if sources["db/smoke/s999"] != "alarm" {
		t.Errorf("the source in alarm is not among those listed")
	}
}
