package sim_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"

	"github.com/doorbridge/doorbridge/drivers/sim"
)

// The state file is built from pre-escaped, sorted keys instead of
// marshalling the map on every change: its bytes must be exactly what
// json.Marshal of the levels writes, whatever the channel names (quotes,
// backslashes, <>&, control characters, any Unicode) and in whatever order
// the lines were opened and set.
func TestStateFileIsTheLevelsAsJSON(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		state := filepath.Join(dir, "relays.json")
		d := sim.New(sim.Options{StateFile: state})
		defer d.Close()
		channels := rapid.SliceOfNDistinct(rapid.OneOf(
			rapid.StringMatching(`[0-9]{1,3}`),
			rapid.String(),
			rapid.SampledFrom([]string{`"`, `\`, "<a&b>", "\u2028", "\x00", "\t", "é", "\xff"}),
		), 1, 20, rapid.ID).Draw(rt, "channels")
		var lines []interface{ Set(bool) error }
		for _, ch := range channels {
			out, err := d.OpenOutput(ch, rapid.Bool().Draw(rt, "initial"))
			if err != nil {
				rt.Fatalf("OpenOutput(%q): %v", ch, err)
			}
			lines = append(lines, out)
		}
		for _, i := range rapid.SliceOfN(rapid.IntRange(0, len(lines)-1), 0, 10).Draw(rt, "sets") {
			if err := lines[i].Set(rapid.Bool().Draw(rt, "level")); err != nil {
				rt.Fatal(err)
			}
		}
		if err := d.Flush(); err != nil {
			rt.Fatal(err)
		}
		got, err := os.ReadFile(state)
		if err != nil {
			rt.Fatal(err)
		}
		want, err := json.Marshal(d.Levels())
		if err != nil {
			rt.Fatal(err)
		}
		if string(got) != string(want) {
			rt.Fatalf("state file\n%s\nwant json.Marshal of the levels\n%s", got, want)
		}
	})
}
