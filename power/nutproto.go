package power

import (
	"errors"
	"fmt"
	"strings"
)

// nutError is an ERR reply from upsd, such as "ERR DATA-STALE". The
// connection that carried it is still in step and is kept.
type nutError struct{ reply string }

func (e *nutError) Error() string { return e.reply }

func replyError(line string) error {
	if strings.HasPrefix(line, "ERR ") {
		return &nutError{reply: line}
	}
	return fmt.Errorf("unexpected reply %.80q", line)
}

// parseVar parses upsd's answer to GET VAR ups name:
// `VAR <ups> <name> "<value>"`, value escaped with backslashes.
func parseVar(line, ups, name string) (string, error) {
	prefix := "VAR " + ups + " " + name + " "
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return "", replyError(line)
	}
	if len(rest) < 2 || rest[0] != '"' {
		return "", fmt.Errorf("unexpected reply %.80q", line)
	}
	var b strings.Builder
	for i := 1; i < len(rest); i++ {
		switch c := rest[i]; c {
		case '\\':
			i++
			if i == len(rest) {
				return "", fmt.Errorf("unexpected reply %.80q", line)
			}
			b.WriteByte(rest[i])
		case '"':
			if i != len(rest)-1 {
				return "", fmt.Errorf("unexpected reply %.80q", line)
			}
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unexpected reply %.80q", line)
}

// errNUTWait is returned while upsd has no data from the driver yet.
var errNUTWait = errors.New(`ups.status "WAIT": upsd has no data from the driver yet`)

// statusLost tells whether a ups.status value (space-separated flags such as
// "OL CHRG" or "OB LB") means mains power is lost.
func statusLost(status string) (bool, error) {
	flags := strings.Fields(status)
	if len(flags) == 0 {
		return false, errors.New(`empty ups.status ""`)
	}
	lost := false
	for _, f := range flags {
		switch f {
		case "OB", "LB", "FSD":
			lost = true
		case "WAIT":
			return false, errNUTWait
		}
	}
	return lost, nil
}

// quoteNUT quotes s as one argument of a NUT command, if it needs it.
func quoteNUT(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"\\") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
