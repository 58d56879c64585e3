package bridge

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Rejected commands are reported in full (a log line, an audit record and
// an error message) only up to rejectBurst per door and minute; the rest of
// the minute's are counted and reported once, as a summary, when the minute
// is over. A flood of junk commands then costs a counter increment each,
// and what it leaves in the log, the audit trail and on MQTT is bounded by
// the number of doors, not by the attacker's rate (issue 12, items 5 and 6).
// Every rejection is still counted in doorbridge_commands_total and
// doorbridge_commands_rejected_total.
const (
	rejectBurst    = 10
	rejectInterval = time.Minute
	// summaryTopics is how many distinct topics a summary names; the rest
	// are counted together. A topic is cut to summaryTopicLen bytes.
	summaryTopics   = 8
	summaryTopicLen = 120
)

// rejectWindow is what one door label's rejections did in one minute.
type rejectWindow struct {
	minute time.Time // start of the minute
	full   int       // reported in full
	quiet  int       // only counted
	// Of the quiet ones: by topic (summaryTopics at most), the rest in
	// otherTopics, and by reason (a fixed set).
	topics      map[string]int
	otherTopics int
	reasons     map[string]int
	errTopic    string
}

// rejectLimiter keeps one window per door label: the configured doors,
// "lockdown" and unknownDoorLabel, so its size is fixed by the config.
// The zero value counts rejected commands; unchangedLimiter accepted ones
// that changed nothing.
type rejectLimiter struct {
	windows   map[string]*rejectWindow
	unchanged bool
}

// rejectSummary is a closed window with quiet rejections to report.
type rejectSummary struct {
	door      string
	w         rejectWindow
	unchanged bool // the commands were accepted but changed nothing
}

// allow reports whether a rejection of door (a label) may be reported in
// full; if not it is counted for the summary. A window of an earlier minute
// that still holds quiet rejections is returned to be reported first.
func (r *rejectLimiter) allow(now time.Time, door, topic, reason, errTopic string) (bool, *rejectSummary) {
	if r.windows == nil {
		r.windows = map[string]*rejectWindow{}
	}
	minute := now.Truncate(rejectInterval)
	w := r.windows[door]
	var closed *rejectSummary
	if w == nil || !w.minute.Equal(minute) {
		if w != nil && w.quiet > 0 {
			closed = &rejectSummary{door: door, w: *w, unchanged: r.unchanged}
		}
		w = &rejectWindow{minute: minute}
		r.windows[door] = w
	}
	if w.full < rejectBurst {
		w.full++
		return true, closed
	}
	w.quiet++
	w.errTopic = errTopic
	if w.topics == nil {
		w.topics, w.reasons = map[string]int{}, map[string]int{}
	}
	w.reasons[reason]++
	if len(topic) > summaryTopicLen {
		topic = topic[:summaryTopicLen] + "…"
	}
	if _, ok := w.topics[topic]; ok || len(w.topics) < summaryTopics {
		w.topics[topic]++
	} else {
		w.otherTopics++
	}
	return false, closed
}

// due returns (and forgets) the windows of minutes before now's that hold
// quiet rejections, in door order.
func (r *rejectLimiter) due(now time.Time) []rejectSummary {
	minute := now.Truncate(rejectInterval)
	var out []rejectSummary
	for _, door := range slices.Sorted(maps.Keys(r.windows)) {
		w := r.windows[door]
		if w.minute.Before(minute) {
			if w.quiet > 0 {
				out = append(out, rejectSummary{door: door, w: *w, unchanged: r.unchanged})
			}
			delete(r.windows, door)
		}
	}
	return out
}

// text says what a summary counted, for people.
func (s rejectSummary) text() string {
	w := s.w
	var topics []string
	for _, t := range slices.Sorted(maps.Keys(w.topics)) {
		topics = append(topics, fmt.Sprintf("%s ×%d", t, w.topics[t]))
	}
	if w.otherTopics > 0 {
		topics = append(topics, fmt.Sprintf("%d more on other topics", w.otherTopics))
	}
	var reasons []string
	for _, r := range slices.Sorted(maps.Keys(w.reasons)) {
		reasons = append(reasons, fmt.Sprintf("%s ×%d", r, w.reasons[r]))
	}
	what := "rejected"
	if s.unchanged {
		what = "accepted that changed nothing"
	}
	return fmt.Sprintf("%d more commands %s in the minute from %s UTC, not reported one by one (%s) from %s",
		w.quiet, what, w.minute.UTC().Format("2006-01-02 15:04"), strings.Join(reasons, ", "), strings.Join(topics, ", "))
}

// reportRejectSummaries reports the summaries of minutes that are over.
// The loop calls it on every tick, so that a flood that stopped is still
// summarised.
func (l *loop) reportRejectSummaries(now time.Time) {
	for _, s := range append(l.rejects.due(now), l.unchanged.due(now)...) {
		l.reportRejectSummary(s)
	}
}

func (l *loop) reportRejectSummary(s rejectSummary) {
	text := s.text()
	msg, outcome := "commands rejected", "rejected"
	if s.unchanged {
		msg, outcome = "commands that changed nothing", "unchanged"
	}
	l.afterIO(func() { l.log.Warn(msg, "door", s.door, "count", s.w.quiet, "summary", text) })
	l.recordLogged(auditEvent{Kind: "command", Door: s.door, Outcome: outcome, Cause: "summary", Detail: text,
		Origin: "minute:" + s.w.minute.UTC().Format(time.RFC3339)})
	if l.mq != nil && s.w.errTopic != "" {
		b, _ := json.Marshal(map[string]any{"error": text, "count": s.w.quiet})
		l.mq.publish(s.w.errTopic, string(b), false)
	}
}
