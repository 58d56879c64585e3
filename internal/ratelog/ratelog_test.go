package ratelog

import (
	"testing"
	"time"
)

func TestEveryLogsOncePerPeriodWithTheCount(t *testing.T) {
	e := Every{Period: 10 * time.Second}
	t0 := time.Unix(1_800_000_000, 0)
	if n, due := e.Note(t0); !due || n != 1 {
		t.Fatalf("first event: %d, %v; want 1, true", n, due)
	}
	for i := 1; i <= 5; i++ {
		if _, due := e.Note(t0.Add(time.Duration(i) * time.Second)); due {
			t.Fatalf("event %d within the period logged", i)
		}
	}
	if n, due := e.Note(t0.Add(10 * time.Second)); !due || n != 6 {
		t.Fatalf("after the period: %d, %v; want 6 (5 held and this), true", n, due)
	}
}
