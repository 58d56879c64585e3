package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/doorbridge/doorbridge/"

// rules reads the table of docs/ARCHITECTURE.md: package -> the project
// packages it may import.
func rules(t *testing.T) map[string][]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Packages and what each may import")
	if !ok {
		t.Fatal(`docs/ARCHITECTURE.md lacks "## Packages and what each may import"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|([^|]*)\\|")
	name := regexp.MustCompile("`([^`]+)`")
	out := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		allowed := []string{}
		for _, a := range name.FindAllStringSubmatch(m[2], -1) {
			allowed = append(allowed, a[1])
		}
		out[m[1]] = allowed
	}
	if len(out) < 10 {
		t.Fatalf("only %d rows read from the table", len(out))
	}
	return out
}

// imports returns every project package (by path in the module) with the
// project packages its non-test files import.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, "../../")))
		if _, ok := out[pkg]; !ok {
			out[pkg] = []string{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out[pkg], dep) {
				out[pkg] = append(out[pkg], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every package imports only what docs/ARCHITECTURE.md lets it, and every
// package has its row there.
func TestImportRules(t *testing.T) {
	allowed := rules(t)
	found := imports(t)
	for pkg, deps := range found {
		ok, listed := allowed[pkg]
		if !listed {
			t.Errorf("package %s has no row in docs/ARCHITECTURE.md's import table: add one", pkg)
			continue
		}
		for _, dep := range deps {
			if !slices.Contains(ok, dep) {
				t.Errorf("%s imports %s, which its row in docs/ARCHITECTURE.md does not allow", pkg, dep)
			}
		}
	}
	for pkg := range allowed {
		if _, ok := found[pkg]; !ok {
			t.Errorf("docs/ARCHITECTURE.md has a row for %s, which is no package", pkg)
		}
	}
}

// The packages the rest builds on stay free of the driver registry and the
// bridge, transitively (what the direct rules imply, checked once more).
func TestCoreIndependent(t *testing.T) {
	found := imports(t)
	var deps func(pkg string, seen map[string]bool)
	deps = func(pkg string, seen map[string]bool) {
		for _, d := range found[pkg] {
			if !seen[d] {
				seen[d] = true
				deps(d, seen)
			}
		}
	}
	for _, pkg := range []string{"policy", "mqttapi", "config", "discovery"} {
		seen := map[string]bool{}
		deps(pkg, seen)
		for d := range seen {
			if strings.HasPrefix(d, "drivers") || d == "bridge" || strings.HasPrefix(d, "cmd") {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
}
