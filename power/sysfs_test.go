package power_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/power"
)

func TestSysfs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content *string // nil: no online file
		lost    bool
		detail  string
		wantErr string // substring; "" for no error
	}{
		{name: "online", content: new("1\n"), detail: `online "1"`},
		{name: "online programmable", content: new("2\n"), detail: `online "2"`},
		{name: "lost", content: new("0\n"), lost: true, detail: `online "0"`},
		{name: "garbage", content: new("yes\n"), wantErr: `unexpected value "yes"`},
		{name: "empty", content: new(""), wantErr: `unexpected value ""`},
		{name: "missing", wantErr: "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "AC")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "online")
			if tc.content != nil {
				if err := os.WriteFile(file, []byte(*tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := power.NewSysfs(dir)
			if got, want := s.Name(), "sysfs:"+dir; got != want {
				t.Errorf("Name() = %q, want %q", got, want)
			}
			lost, detail, err := s.Poll(context.Background())
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Poll() = %v, %q, nil; want error containing %q", lost, detail, tc.wantErr)
				}
				msg := err.Error()
				for _, want := range []string{"power: sysfs: ", file, tc.wantErr} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not contain %q", msg, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Poll() error: %v", err)
			}
			if lost != tc.lost || detail != tc.detail {
				t.Errorf("Poll() = %v, %q; want %v, %q", lost, detail, tc.lost, tc.detail)
			}
		})
	}
}
