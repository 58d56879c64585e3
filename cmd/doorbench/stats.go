package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// summary is one figure over its samples. p99 is the nearest-rank
// percentile: with fewer than 100 samples it is the maximum.
type summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Note  string  `json:"note,omitempty"`
	// Samples are the raw values, in the order measured.
	Samples []float64 `json:"samples,omitempty"`
}

func summarize(samples []float64) summary {
	if len(samples) == 0 {
		return summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return summary{Count: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1], Samples: samples}
}

// Figure names, in table order.
var figureOrder = []string{
	"alarm_release_ms",
	"broker_kill_release_ms",
	"silent_link_release_ms",
	"command_relay_ms",
	"command_echo_ms",
	"commands_lost",
	"commands_refused",
	"commands_superseded",
	"commands_sent",
	"command_roundtrip_ms",
	"startup_safe_ms",
	"startup_ready_ms",
	"rss_mb",
	"cpu_idle_pct",
	"cpu_idle_pct_schedstat",
	"mqtt_hop_ms",
}

// run is the figures of one bridge configuration.
type run struct {
	Broker             string             `json:"broker"`
	Doors              int                `json:"doors"`
	HeartbeatTimeoutMS float64            `json:"heartbeat_timeout_ms"`
	Figures            map[string]summary `json:"figures"`
	NA                 map[string]string  `json:"not_applicable,omitempty"`
	samples            map[string][]float64
}

func newRun(broker string, doors int) *run {
	return &run{Broker: broker, Doors: doors, Figures: map[string]summary{}, NA: map[string]string{}, samples: map[string][]float64{}}
}

func (r *run) add(fig string, v float64) { r.samples[fig] = append(r.samples[fig], v) }

func (r *run) finish() {
	for fig, s := range r.samples {
		r.Figures[fig] = summarize(s)
	}
}

// report is what --json writes.
type report struct {
	Command     string            `json:"command"`
	Environment map[string]string `json:"environment"`
	Method      []string          `json:"method"`
	Runs        []*run            `json:"runs"`
	// PahoDefault is the silent-link detection of a paho client with paho's
	// default keepalive (30 s) and ping timeout (10 s): what a bridge
	// without its own heartbeat gets.
	PahoDefault *pahoDefault `json:"paho_default_silent_link,omitempty"`
}

type pahoDefault struct {
	Measured     summary `json:"measured_ms"`
	ComputedMinS float64 `json:"computed_min_s"`
	ComputedMaxS float64 `json:"computed_max_s"`
	How          string  `json:"how"`
}

// printTable writes a Markdown table: one row per figure, one column per run.
func printTable(w io.Writer, runs []*run) {
	var head, rule []string
	head = append(head, "figure (p50 / p99 / max)")
	rule = append(rule, "---")
	for _, r := range runs {
		head = append(head, fmt.Sprintf("%s, %d doors", r.Broker, r.Doors))
		rule = append(rule, "---")
	}
	fmt.Fprintf(w, "| %s |\n| %s |\n", strings.Join(head, " | "), strings.Join(rule, " | "))
	for _, fig := range figureOrder {
		row := []string{fig}
		any := false
		for _, r := range runs {
			s, ok := r.Figures[fig]
			switch {
			case ok && s.Count > 0:
				any = true
				row = append(row, formatSummary(fig, s, r))
			case r.NA[fig] != "":
				row = append(row, "n/a")
			default:
				row = append(row, "")
			}
		}
		if any {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
}

func formatSummary(fig string, s summary, r *run) string {
	f := func(v float64) string {
		switch {
		case strings.HasPrefix(fig, "commands_"):
			return fmt.Sprintf("%.0f", v)
		case strings.HasSuffix(fig, "_pct"), strings.HasSuffix(fig, "_schedstat"):
			return fmt.Sprintf("%.3f", v)
		case v >= 100:
			return fmt.Sprintf("%.0f", v)
		case v >= 10:
			return fmt.Sprintf("%.1f", v)
		default:
			return fmt.Sprintf("%.2f", v)
		}
	}
	var out string
	if s.Count == 1 {
		out = f(s.Max)
	} else {
		out = fmt.Sprintf("%s / %s / %s", f(s.P50), f(s.P99), f(s.Max))
	}
	if fig == "silent_link_release_ms" {
		out += fmt.Sprintf(" (hb timeout %.0f)", r.HeartbeatTimeoutMS)
	}
	return out
}
