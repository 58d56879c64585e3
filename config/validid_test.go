package config

import (
	"regexp"
	"testing"

	"pgregory.net/rapid"
)

// validID replaced the regexp it was once compiled from at package init:
// it must accept exactly what the regexp accepts.
func TestValidIDIsThePattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[a-z0-9_-]+$`)
	for _, s := range []string{"", "front", "door-1_a", "Front", "a b", "a.b", "ä", "-", "_", "a\n", "\x00"} {
		if got, want := validID(s), pattern.MatchString(s); got != want {
			t.Errorf("validID(%q) = %v, want %v", s, got, want)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.StringMatching(`[a-zA-Z0-9_ .\-\x00-\x20é]{0,12}`).Draw(t, "s")
		if got, want := validID(s), pattern.MatchString(s); got != want {
			t.Fatalf("validID(%q) = %v, want %v", s, got, want)
		}
	})
}
