package bridge

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/doorbridge/doorbridge/config"
)

// topicPattern is a topic filter with + wildcards (never #): the levels of
// a configured alarm or availability topic.
type topicPattern struct {
	levels []string
	plus   int
}

func newTopicPattern(filter string) topicPattern {
	p := topicPattern{levels: strings.Split(filter, "/")}
	for _, l := range p.levels {
		if l == "+" {
			p.plus++
		}
	}
	return p
}

func (p topicPattern) wild() bool { return p.plus > 0 }

// match reports whether topic matches the pattern and returns what each +
// stood for, in order (nil for a pattern without wildcards). A + matches
// one whole level, which may be empty, as in MQTT.
func (p topicPattern) match(topic string) (captures []string, ok bool) {
	if len(p.levels) == 0 {
		return nil, false
	}
	if p.plus > 0 && strings.HasPrefix(topic, "$") {
		// MQTT: wildcards never match topics starting with $ ($SYS...).
		return nil, false
	}
	rest := topic
	for i, l := range p.levels {
		level, after, more := strings.Cut(rest, "/")
		last := i == len(p.levels)-1
		if more == last {
			return nil, false // too many or too few levels
		}
		if l == "+" {
			captures = append(captures, level)
		} else if l != level {
			return nil, false
		}
		rest = after
	}
	return captures, true
}

// expand fills the pattern's + levels with captures (from match on another
// pattern with as many +).
func (p topicPattern) expand(captures []string) string {
	out := make([]string, len(p.levels))
	n := 0
	for i, l := range p.levels {
		if l == "+" && n < len(captures) {
			l = captures[n]
			n++
		}
		out[i] = l
	}
	return strings.Join(out, "/")
}

// matchResult is what one payload says for one alarm entry.
type matchResult uint8

const (
	matchOff        matchResult = iota // the clear value
	matchOn                            // the alarm value
	matchEmpty                         // empty payload (a cleared retained message): no value
	matchNull                          // value_json: the path holds null: no value
	matchNoPath                        // value_json: valid JSON without the path
	matchNotJSON                       // value_json: the payload is not JSON
	matchUnexpected                    // a value that is neither on nor off
)

var matchNames = [...]string{"off", "on", "empty", "null", "no_path", "not_json", "unexpected"}

func (r matchResult) String() string {
	if int(r) < len(matchNames) {
		return matchNames[r]
	}
	return "invalid"
}

// payloadMatcher classifies the payloads of one alarm entry. It is a pure
// function of the configuration and the payload (unit and fuzz tested).
type payloadMatcher struct {
	path    string // value_json; "" compares whole payloads
	on, off []byte // plain payloads, or canonical JSON of on/off with a path
}

func newPayloadMatcher(a config.Alarm) payloadMatcher {
	if a.ValueJSON == "" {
		return payloadMatcher{on: []byte(a.PayloadOn), off: []byte(a.PayloadOff)}
	}
	// Validation made sure both are JSON scalars; a value that is not (a
	// config built in code) matches nothing, so it can only mean alarm.
	on, _ := config.AlarmValueJSON(a.On)
	off, _ := config.AlarmValueJSON(a.Off)
	return payloadMatcher{path: a.ValueJSON, on: []byte(on), off: []byte(off)}
}

// match classifies p. With a path, the value there is compared with on and
// off as JSON: a string with a string, a number with a number by value, a
// bool with a bool.
func (m payloadMatcher) match(p []byte) matchResult {
	if len(p) == 0 {
		return matchEmpty
	}
	if m.path == "" {
		switch {
		case bytes.Equal(p, m.off):
			return matchOff
		case bytes.Equal(p, m.on):
			return matchOn
		}
		return matchUnexpected
	}
	if !gjson.ValidBytes(p) {
		return matchNotJSON
	}
	r := gjson.GetBytes(p, m.path)
	if !r.Exists() {
		return matchNoPath
	}
	if r.Type == gjson.Null {
		return matchNull
	}
	if r.Type == gjson.JSON {
		return matchUnexpected // an object or a list is never a clear value
	}
	v, ok := config.AlarmValueJSON(r.Value())
	switch {
	case !ok:
		return matchUnexpected
	case v == string(m.off):
		return matchOff
	case v == string(m.on):
		return matchOn
	}
	return matchUnexpected
}
