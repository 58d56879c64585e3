package secretfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	if got, err := Read(write("ok", "s3cret\r\n", 0o600)); err != nil || got != "s3cret" {
		t.Errorf("Read = %q, %v", got, err)
	}
	if got, err := Read(write("group", "s3cret\n", 0o640)); err != nil || got != "s3cret" {
		t.Errorf("group-readable: %q, %v (root:doorbridge 0640 is allowed)", got, err)
	}
	for name, c := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"world": {"x", 0o644, "readable by every account"},
		"gw":    {"x", 0o620, "writable by its group"},
		"empty": {"\n", 0o600, "is empty"},
	} {
		if _, err := Read(write(name, c.content, c.mode)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file read")
	}
}
