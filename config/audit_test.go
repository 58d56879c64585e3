package config_test

import (
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// The audit file is off by default; sizes need a unit, in either family.
func TestAuditSection(t *testing.T) {
	cfg, err := config.Load(testdata("good-minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audit != config.DefaultAudit() || cfg.Audit.File != "" || cfg.Audit.MaxSize != 10*config.MB || cfg.Audit.MaxFiles != 5 {
		t.Errorf("audit = %+v, want no file, 10MB, 5 files", cfg.Audit)
	}
	t.Setenv("DOORBRIDGE_AUDIT__FILE", "/data/audit.jsonl")
	t.Setenv("DOORBRIDGE_AUDIT__MAX_SIZE", "2MiB")
	cfg, err = config.Load(testdata("good-minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audit.File != "/data/audit.jsonl" || cfg.Audit.MaxSize != 2*1024*1024 {
		t.Errorf("audit from the environment = %+v", cfg.Audit)
	}
	for in, want := range map[string]config.ByteSize{
		"10MB": 10_000_000, "512 KiB": 512 * 1024, "1.5gb": 1_500_000_000, "64kB": 64_000, "100B": 100, "1GiB": 1 << 30,
	} {
		if got, err := config.ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"10", "MB", "-1MB", "10 megs", "1e30GB", ""} {
		if got, err := config.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %v, want an error", in, got)
		}
	}
	for size, want := range map[config.ByteSize]string{10 * config.MB: "10MB", 64 * config.KiB: "64KiB", 1500: "1500B", 0: "0B"} {
		if got := size.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(size), got, want)
		}
	}
}
