package main

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSummarize checks the figures' statistics: nearest-rank p50 and p99
// (p99 is the maximum below 100 samples), count and max, with the raw
// samples kept in the order measured.
func TestSummarize(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100, 99, ..., 1: unsorted on purpose
	}
	cases := []struct {
		name    string
		samples []float64
		want    summary
	}{
		{"none", nil, summary{}},
		{"one", []float64{7}, summary{Count: 1, P50: 7, P99: 7, Max: 7}},
		{"two", []float64{9, 3}, summary{Count: 2, P50: 3, P99: 9, Max: 9}},
		{"three", []float64{5, 1, 3}, summary{Count: 3, P50: 3, P99: 5, Max: 5}},
		{"four: p50 is the 2nd", []float64{4, 3, 2, 1}, summary{Count: 4, P50: 2, P99: 4, Max: 4}},
		{"hundred: p99 is the 99th", hundred, summary{Count: 100, P50: 50, P99: 99, Max: 100}},
		{"ties", []float64{2, 2, 2, 8}, summary{Count: 4, P50: 2, P99: 8, Max: 8}},
	}
	for _, c := range cases {
		orig := slices.Clone(c.samples)
		got := summarize(c.samples)
		if !slices.Equal(c.samples, orig) {
			t.Errorf("%s: summarize reordered its input: %v", c.name, c.samples)
		}
		if !slices.Equal(got.Samples, orig) {
			t.Errorf("%s: samples %v, want %v in the order measured", c.name, got.Samples, orig)
		}
		got.Samples, c.want.Samples = nil, nil
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestReportJSON checks the shape --json writes: the keys other tools read.
func TestReportJSON(t *testing.T) {
	r := newRun("mosquitto", 4)
	r.HeartbeatTimeoutMS = 3000
	for _, v := range []float64{3, 1, 2} {
		r.add("alarm_release_ms", v)
	}
	r.NA["broker_kill_release_ms"] = "embedded broker"
	r.finish()
	rep := &report{Command: "doorbench --doors 4", Environment: map[string]string{"cores": "2"}, Method: []string{"m"}, Runs: []*run{r},
		PahoDefault: &pahoDefault{Measured: summarize([]float64{40000}), ComputedMinS: 30, ComputedMaxS: 40, How: "h"}}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	keys := func(m any) []string {
		mm, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("not an object: %v", m)
		}
		return slices.Sorted(maps.Keys(mm))
	}
	check := func(what string, m any, want ...string) {
		t.Helper()
		if k := keys(m); !slices.Equal(k, want) {
			t.Errorf("%s keys %v, want %v", what, k, want)
		}
	}
	check("report", got, "command", "environment", "method", "paho_default_silent_link", "runs")
	run0 := got["runs"].([]any)[0].(map[string]any)
	check("run", run0, "broker", "doors", "figures", "heartbeat_timeout_ms", "not_applicable")
	fig := run0["figures"].(map[string]any)["alarm_release_ms"]
	check("figure", fig, "count", "max", "p50", "p99", "samples")
	if f := fig.(map[string]any); f["count"] != 3.0 || f["p50"] != 2.0 || f["max"] != 3.0 {
		t.Errorf("figure %v, want count 3, p50 2, max 3", f)
	}
	check("paho_default_silent_link", got["paho_default_silent_link"], "computed_max_s", "computed_min_s", "how", "measured_ms")
	if run0["broker"] != "mosquitto" || run0["doors"] != 4.0 || run0["heartbeat_timeout_ms"] != 3000.0 {
		t.Errorf("run %v", run0)
	}
}

// TestPrintTable checks the Markdown table: one column per run, figures in
// table order, a single sample as one value, n/a where a figure does not
// apply, and rows nobody measured left out.
func TestPrintTable(t *testing.T) {
	a, b := newRun("mosquitto", 4), newRun("embedded", 4)
	a.HeartbeatTimeoutMS = 3000
	for _, v := range []float64{1.5, 0.5, 12} {
		a.add("alarm_release_ms", v)
	}
	a.add("broker_kill_release_ms", 250)
	a.add("silent_link_release_ms", 2500)
	a.add("cpu_idle_pct", 0.1234)
	b.NA["broker_kill_release_ms"] = "embedded broker"
	a.finish()
	b.finish()
	var out strings.Builder
	printTable(&out, []*run{a, b})
	want := `| figure (p50 / p99 / max) | mosquitto, 4 doors | embedded, 4 doors |
| --- | --- | --- |
| alarm_release_ms | 1.50 / 12.0 / 12.0 |  |
| broker_kill_release_ms | 250 | n/a |
| silent_link_release_ms | 2500 (hb timeout 3000) |  |
| cpu_idle_pct | 0.123 |  |
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}
