package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
)

// cmdEvents prints the audit file (audit.file and its rotated files, oldest
// first) as a table.
func cmdEvents(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	path := fs.String("file", "", "audit file to read (default: audit.file from the config)")
	since := fs.Duration("since", 24*time.Hour, "only events of this last stretch of time (0: all)")
	door := fs.String("door", "", "only events of this door")
	asJSON := fs.Bool("json", false, "print the events as JSON lines instead of a table")
	if code, done := parseFlags(fs, args, "events [-c FILE | -file AUDIT] [-since 24h] [-door DOOR] [-json]"); done {
		return code
	}
	if *path == "" {
		cfg, err := config.Load(config.Path(*file))
		if err != nil {
			fmt.Fprintf(stderr, "doorbridge: %v\n", err)
			return 1
		}
		if cfg.Audit.File == "" {
			fmt.Fprintf(stderr, "doorbridge: events: audit.file is not set in %s: there is no audit file to read\n", cfg.File)
			return 1
		}
		*path = cfg.Audit.File
	}
	var from time.Time
	if *since > 0 {
		from = time.Now().Add(-*since)
	}

	var tw *tabwriter.Writer
	if !*asJSON {
		tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tDOOR/HAZARD\tOUTCOME\tCAUSE\tORIGIN\tDETAIL")
	}
	shown := 0
	bad, err := audit.ReadAll(*path, func(_ string, e audit.Event) {
		if e.Time.Before(from) || *door != "" && e.Door != *door {
			return
		}
		shown++
		if *asJSON {
			line, _ := json.Marshal(e)
			fmt.Fprintf(stdout, "%s\n", line)
			return
		}
		subject := e.Door
		if e.Hazard != "" {
			subject = e.Hazard
		}
		outcome := e.Outcome
		if e.Energized != nil {
			outcome += map[bool]string{true: " (power on)", false: " (power off)"}[*e.Energized]
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05.000"),
			e.Kind, dash(subject), outcome, dash(e.Cause), dash(e.Origin), oneLine(e.Detail))
	})
	if tw != nil {
		tw.Flush()
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "doorbridge: events: skipped %d unreadable line(s) in %s*\n", bad, *path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: events: %v\n", err)
		return 1
	}
	if shown == 0 && !*asJSON {
		fmt.Fprintf(stderr, "no events in %s* since %s\n", *path, sinceText(*since))
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
}

func sinceText(d time.Duration) string {
	if d <= 0 {
		return "the start"
	}
	return d.String() + " ago"
}
