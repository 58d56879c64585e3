package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Audit is the audit trail's file (R20). Events always go to the log and to
// MQTT (B/N/events); File adds an append-only JSON-lines file, rotated by
// size, that `doorbridge events` prints.
type Audit struct {
	// File is the current audit file ("" = no file). Rotated files are kept
	// beside it as File.1 (newest) … File.<max_files>.
	File string `koanf:"file"`
	// MaxSize rotates the file before a write would take it past this size.
	MaxSize ByteSize `koanf:"max_size"`
	// MaxFiles is how many rotated files are kept; older ones are deleted.
	MaxFiles int `koanf:"max_files"`
}

// Audit file limits.
const (
	DefaultAuditMaxSize  ByteSize = 10 * MB
	DefaultAuditMaxFiles          = 5
	MinAuditMaxSize      ByteSize = 64 * KB
	MaxAuditMaxSize      ByteSize = 1 * GB
	MaxAuditMaxFiles              = 100
)

// DefaultAudit is the audit section used where the file is silent: no file.
func DefaultAudit() Audit {
	return Audit{MaxSize: DefaultAuditMaxSize, MaxFiles: DefaultAuditMaxFiles}
}

func (c *Config) validateAudit(v *validator) {
	a := c.Audit
	if strings.HasSuffix(a.File, "/") {
		v.add("audit.file", "%q names a directory; name a file in it (e.g. /data/audit.jsonl)", a.File)
	}
	if a.MaxSize < MinAuditMaxSize || a.MaxSize > MaxAuditMaxSize {
		v.add("audit.max_size", "%v must be between %v and %v", a.MaxSize, MinAuditMaxSize, MaxAuditMaxSize)
	}
	if a.MaxFiles < 1 || a.MaxFiles > MaxAuditMaxFiles {
		v.add("audit.max_files", "%d must be between 1 and %d (rotated files kept beside audit.file)", a.MaxFiles, MaxAuditMaxFiles)
	}
}

// ByteSize is a size in bytes, written with a unit: 512KB, 10MB, 1GB
// (powers of 1000) or 64KiB, 10MiB, 1GiB (powers of 1024).
type ByteSize int64

// Units of ByteSize.
const (
	B   ByteSize = 1
	KB  ByteSize = 1000
	MB  ByteSize = 1000 * KB
	GB  ByteSize = 1000 * MB
	KiB ByteSize = 1024
	MiB ByteSize = 1024 * KiB
	GiB ByteSize = 1024 * MiB
)

var sizeUnits = []struct {
	name string
	size ByteSize
}{{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"GB", GB}, {"MB", MB}, {"KB", KB}, {"B", B}}

// ParseByteSize parses a number and a unit: "10MB", "512 KiB", "1.5GB".
// Units are case-insensitive; a bare number is refused.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	for _, u := range sizeUnits {
		if len(t) > len(u.name) && strings.EqualFold(t[len(t)-len(u.name):], u.name) {
			num := strings.TrimSpace(t[:len(t)-len(u.name)])
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f < 0 || f*float64(u.size) > 1<<62 {
				break
			}
			return ByteSize(f * float64(u.size)), nil
		}
	}
	return 0, fmt.Errorf("%q is not a size", s)
}

// UnmarshalText parses a size written with its unit.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String writes the size with the largest unit that divides it.
func (b ByteSize) String() string {
	for _, u := range sizeUnits {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

var byteSizeType = reflect.TypeFor[ByteSize]()

// refuseBareSizes is a decode hook that stops a number without a unit from
// becoming a size: is "max_size: 10" ten bytes or ten megabytes?
func refuseBareSizes(from, to reflect.Type, data any) (any, error) {
	if to != byteSizeType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		return data, nil
	default:
		return nil, errors.New("number without a unit")
	}
}
