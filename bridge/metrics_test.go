package bridge

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func scrape(t *testing.T, b *Bridge) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(b.reg, promhttp.HandlerOpts{Registry: b.reg}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, body)
	}
	return string(body)
}

// Every metric the README and the Grafana dashboard name is served, with
// the labels they use.
func TestMetricsScrape(t *testing.T) {
	l, clk := newTestLoop(t, withoutLatch())
	l.alarm("OFF")
	l.settle(clk)
	if !l.b.byID["fs"].power {
		t.Fatal("fail-safe door not locked after the alarm cleared")
	}
	// A stale command, a retained one and one for a door that does not exist.
	l.send("db/t1/fsec/set", `{"action": "UNLOCK", "ts": 1}`, false)
	l.send("db/t1/fsec/set", "UNLOCK", true)
	l.send("db/t1/attic/set", "UNLOCK", false)
	l.send("db/t1/fsec/set", "UNLOCK", false)

	clk.t = clk.t.Add(90 * time.Second)
	l.alarm("ON")
	clk.t = clk.t.Add(42 * time.Second)
	l.alarm("OFF")
	l.settle(clk)

	body := scrape(t, l.b)
	for _, want := range []string{
		`doorbridge_build_info{goversion="` + runtime.Version() + `",version="test"} 1`,
		`doorbridge_commands_total{door="fsec",result="accepted"} 1`,
		`doorbridge_commands_total{door="fsec",result="rejected"} 1`,
		`doorbridge_commands_total{door="fsec",result="ignored"} 1`,
		`doorbridge_commands_rejected_total{door="fsec",reason="stale"} 1`,
		`doorbridge_commands_rejected_total{door="fsec",reason="retained"} 1`,
		`doorbridge_commands_rejected_total{door="(unknown)",reason="unknown_door"} 1`,
		`doorbridge_commands_rejected_total{door="fs",reason="code"} 0`,
		`doorbridge_commands_rejected_total{door="lockdown",reason="hazard"} 0`,
		`doorbridge_hazard_duration_seconds_bucket{hazard="alarm",le="30"} 0`,
		`doorbridge_hazard_duration_seconds_bucket{hazard="alarm",le="60"} 1`,
		`doorbridge_hazard_duration_seconds_count{hazard="broker"} 0`,
		`doorbridge_hazard_release_seconds_count 1`,
		`doorbridge_hazard_release_seconds_bucket{le="1"} 1`,
		`doorbridge_hazard_active{hazard="alarm"} 0`,
		`doorbridge_watchdog_trips_total{hazard="alarm"} 1`,
		`doorbridge_heartbeat_rtt_seconds_bucket{le="0.001"} 0`,
		`doorbridge_mqtt_connects_total 0`,
		`doorbridge_mqtt_connected 1`,
		`doorbridge_lock_energized{door="fs"} 1`,
		`doorbridge_door_locked{door="fsec"} 0`,
		`doorbridge_relay_writes_total{door="fs"} 4`, // off at start, locked, released, relocked
		`doorbridge_audit_file_dropped_total 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if rejected := grepLines(body, "doorbridge_commands_rejected_total{"); strings.Contains(rejected, "attic") {
		t.Errorf("a command for an unknown door added a series with its id:\n%s", rejected)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(body, "doorbridge_"))
	}
}

// The startup hazard is active, and timed, from the first evaluation: its
// duration is the time from start to the first proven link.
func TestStartupHazardTimed(t *testing.T) {
	l, clk := newTestLoop(t, unlinked())
	b := l.b
	l.evaluate("startup")
	if got := testutil.ToFloat64(b.m.hazardActive.WithLabelValues("startup")); got != 1 {
		t.Fatalf("hazard_active{startup} = %v after the first evaluation, want 1", got)
	}
	clk.t = clk.t.Add(3 * time.Second)
	l.alarm("OFF")
	l.settle(clk)
	if n := testutil.CollectAndCount(b.m.hazardDuration); n != int(numHazards) {
		t.Fatalf("hazard_duration has %d series, want one per hazard", n)
	}
	h := testutil.ToFloat64(b.m.hazardActive.WithLabelValues("startup"))
	body := scrape(t, b)
	if h != 0 || !strings.Contains(body, `doorbridge_hazard_duration_seconds_sum{hazard="startup"} 3`+"\n") {
		t.Fatalf("startup hazard active=%v; durations:\n%s", h, grepLines(body, "hazard_duration_seconds_sum"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// The Grafana dashboard asks only for metrics /metrics serves, and its
// queries are valid PromQL (checked with promtool when it is installed).
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "configs", "grafana", "doorbridge.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	l, clk := newTestLoop(t, withoutLatch())
	l.alarm("OFF")
	l.settle(clk)
	l.send("db/t1/fsec/set", "LOCK", false) // commands_total appears with its first command
	served := scrape(t, l.b)

	name := regexp.MustCompile(`doorbridge_[a-z_]+`)
	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %s does not filter on $instance", p.Title, q.Expr)
			}
			for _, m := range name.FindAllString(q.Expr, -1) {
				if !strings.Contains(served, "\n"+m) {
					t.Errorf("panel %q asks for %s, which /metrics does not serve", p.Title, m)
				}
			}
		}
	}
	if dash.UID != "doorbridge" || len(exprs) < 10 {
		t.Fatalf("uid %q, %d queries", dash.UID, len(exprs))
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): PromQL syntax not checked")
	}
	// Grafana's variables, replaced by values PromQL accepts, as recording
	// rules: promtool check rules parses every expression.
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1d", "$instance", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(vars.Replace(e))
		fmt.Fprintf(&rules, "      - record: dashboard:q%d\n        expr: %s\n", i, q)
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	os.WriteFile(file, []byte(rules.String()), 0o600)
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
