package policy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/SAFETY-RULES.md defines every rule the code cites and names the tests
// that prove each: every rule cited in a Go file is defined there, and every
// test it names exists.
func TestSafetyRulesDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/SAFETY-RULES.md")
	if err != nil {
		t.Fatal(err)
	}
	rules, proofs, ok := strings.Cut(string(doc), "## Where each rule lives")
	if !ok {
		t.Fatal(`docs/SAFETY-RULES.md lacks its "## Where each rule lives" section`)
	}
	row := regexp.MustCompile(`(?m)^\| (R\d+) \|`)
	defined, proved := map[string]bool{}, map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(rules, -1) {
		defined[m[1]] = true
	}
	for _, m := range row.FindAllStringSubmatch(proofs, -1) {
		proved[m[1]] = true
	}
	for r := range defined {
		if !proved[r] {
			t.Errorf("docs/SAFETY-RULES.md defines %s but does not say what proves it", r)
		}
	}
	var src strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, r := range regexp.MustCompile(`\bR\d{1,2}\b`).FindAllString(string(b), -1) {
			if !defined[r] {
				t.Errorf("%s cites %s, which docs/SAFETY-RULES.md does not define", path, r)
			}
		}
		src.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if !strings.Contains(src.String(), "func "+m[1]+"(") {
			t.Errorf("docs/SAFETY-RULES.md names %s, which no Go file defines", m[1])
		}
	}
}
