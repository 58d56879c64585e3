package discovery_test

import (
	"fmt"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
)

func BenchmarkBuild(b *testing.B) {
	doors := make([]config.Door, 256)
	for i := range doors {
		hash := ""
		if i%2 == 1 {
			hash = testHash
		}
		doors[i] = door(fmt.Sprintf("door-%03d", i), config.FailSafe, hash)
	}
	cfg := newConfig(b, doors...)
	b.ReportAllocs()
	for b.Loop() {
		if msgs := discovery.Build(cfg, testInfo); len(msgs) != 257 {
			b.Fatal(len(msgs))
		}
	}
}

func TestBuild256DoorsValid(t *testing.T) {
	doors := make([]config.Door, 256)
	for i := range doors {
		doors[i] = door(fmt.Sprintf("d%d", i), config.FailSecure, testHash)
	}
	validateAll(t, discovery.Build(newConfig(t, doors...), testInfo))
}
