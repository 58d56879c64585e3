package power_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/power"
)

// waitFor bounds every wait in these tests; a healthy run needs a tiny
// fraction of it.
const waitFor = 10 * time.Second

// fakeSource is a Source whose readings the test sets.
type fakeSource struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled on every Poll
	lost   bool
	err    error
	hang   bool // Poll blocks until its ctx ends
	polls  int
	active bool // a Poll is running
	overl  bool // two Polls overlapped
}

func newFake() *fakeSource {
	f := &fakeSource{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeSource) Name() string { return "fake" }

func (f *fakeSource) Poll(ctx context.Context) (bool, string, error) {
	f.mu.Lock()
	if f.active {
		f.overl = true
	}
	f.active = true
	f.polls++
	lost, err, hang := f.lost, f.err, f.hang
	f.cond.Broadcast()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active = false
		f.mu.Unlock()
	}()
	if hang {
		<-ctx.Done()
		return false, "", ctx.Err()
	}
	if err != nil {
		return false, "", err
	}
	if lost {
		return true, "status lost", nil
	}
	return false, "status ok", nil
}

func (f *fakeSource) set(lost bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost, f.err = lost, err
}

// settle waits until n more Polls have started. A Poll starts only after the
// result of the one before it has been handled, so when settle returns, every
// report due to the readings before the last n-1 polls has been made.
func (f *fakeSource) settle(t *testing.T, n int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pollsLocked(t, f.polls+n)
}

// started waits until n Polls in all have started.
func (f *fakeSource) started(t *testing.T, n int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pollsLocked(t, n)
}

func (f *fakeSource) pollsLocked(t *testing.T, target int) {
	t.Helper()
	timer := time.AfterFunc(waitFor, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer timer.Stop()
	start := time.Now()
	for f.polls < target {
		if time.Since(start) > waitFor {
			t.Fatalf("only %d polls after %s, want %d", f.polls, waitFor, target)
		}
		f.cond.Wait()
	}
	if f.overl {
		t.Fatal("Polls overlapped")
	}
}

// watcher runs Watch in the background and records its reports.
type watcher struct {
	reports chan power.Status
	cancel  context.CancelFunc
	done    chan struct{}
	start   time.Time
}

func startWatch(t *testing.T, src power.Source, interval, timeout time.Duration) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{reports: make(chan power.Status, 100), cancel: cancel, done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(w.done)
		power.Watch(ctx, src, interval, timeout, func(s power.Status) { w.reports <- s })
	}()
	t.Cleanup(w.stop(t))
	return w
}

// stop returns a func that cancels Watch and checks that it returns.
func (w *watcher) stop(t *testing.T) func() {
	return func() {
		w.cancel()
		select {
		case <-w.done:
		case <-time.After(waitFor):
			t.Errorf("Watch did not return within %s of cancel", waitFor)
		}
	}
}

func (w *watcher) next(t *testing.T) power.Status {
	t.Helper()
	select {
	case s := <-w.reports:
		return s
	case <-time.After(waitFor):
		t.Fatalf("no report within %s", waitFor)
		return power.Status{}
	}
}

func (w *watcher) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-w.reports:
		t.Fatalf("unexpected report %+v", s)
	default:
	}
}

func wantStatus(t *testing.T, got power.Status, lost bool, detail string, wantErr error) {
	t.Helper()
	if got.Source != "fake" || got.Lost != lost || got.Detail != detail || !errors.Is(got.Err, wantErr) || (wantErr == nil) != (got.Err == nil) {
		t.Fatalf("report = %+v; want Lost=%v Detail=%q Err=%v", got, lost, detail, wantErr)
	}
}

func TestWatchReportsFirstReadingAndChanges(t *testing.T) {
	f := newFake()
	w := startWatch(t, f, 5*time.Millisecond, waitFor)

	wantStatus(t, w.next(t), false, "status ok", nil)
	f.settle(t, 5)
	w.none(t) // unchanged: no report

	f.set(true, nil)
	wantStatus(t, w.next(t), true, "status lost", nil)
	f.settle(t, 5)
	w.none(t)

	f.set(false, nil)
	wantStatus(t, w.next(t), false, "status ok", nil)
	f.settle(t, 5)
	w.none(t)
}

func TestWatchFirstReadingLost(t *testing.T) {
	f := newFake()
	f.set(true, nil)
	w := startWatch(t, f, 5*time.Millisecond, waitFor)
	wantStatus(t, w.next(t), true, "status lost", nil)
	f.settle(t, 5)
	w.none(t)
}

func TestWatchShortErrorKeepsState(t *testing.T) {
	errRead := errors.New("read failed")
	for _, lost := range []bool{false, true} {
		f := newFake()
		f.set(lost, nil)
		// The timeout is far longer than the errors last.
		w := startWatch(t, f, 5*time.Millisecond, waitFor)
		first := w.next(t)
		if first.Lost != lost {
			t.Fatalf("first report %+v, want Lost=%v", first, lost)
		}
		f.set(lost, errRead)
		f.settle(t, 10)
		w.none(t)
		f.set(lost, nil)
		f.settle(t, 5)
		w.none(t)
		w.stop(t)()
	}
}

func TestWatchLongErrorIsLost(t *testing.T) {
	const interval, timeout = 5 * time.Millisecond, 150 * time.Millisecond
	errRead := errors.New("read failed")
	for _, lost := range []bool{false, true} {
		f := newFake()
		f.set(lost, nil)
		w := startWatch(t, f, interval, timeout)
		if s := w.next(t); s.Lost != lost || s.Err != nil {
			t.Fatalf("first report %+v, want Lost=%v", s, lost)
		}

		failed := time.Now()
		f.set(lost, errRead)
		// Lost-with-Err is a change even when the source last said lost:
		// the caller learns that the reading is failing.
		wantStatus(t, w.next(t), true, "", errRead)
		// The last good reading ended at most one interval before failed.
		if elapsed := time.Since(failed); elapsed < timeout-interval {
			t.Errorf("Lost after %s of errors, want at least %s", elapsed, timeout-interval)
		}
		f.settle(t, 5)
		w.none(t) // still failing: unchanged

		f.set(lost, nil) // recovered
		want := "status ok"
		if lost {
			want = "status lost"
		}
		wantStatus(t, w.next(t), lost, want, nil)
		f.settle(t, 5)
		w.none(t)
		w.stop(t)()
	}
}

func TestWatchStartWithErrorsReportsLostAfterTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	errRead := errors.New("read failed")
	f := newFake()
	f.set(false, errRead)
	w := startWatch(t, f, 5*time.Millisecond, timeout)
	wantStatus(t, w.next(t), true, "", errRead)
	if elapsed := time.Since(w.start); elapsed < timeout {
		t.Errorf("first report after %s, want at least the timeout %s", elapsed, timeout)
	}
	f.set(false, nil)
	wantStatus(t, w.next(t), false, "status ok", nil)
}

func TestWatchStartWithErrorsThenGoodReading(t *testing.T) {
	f := newFake()
	f.set(true, errors.New("read failed"))
	w := startWatch(t, f, 5*time.Millisecond, waitFor)
	f.settle(t, 5)
	w.none(t) // state unknown: nothing to report yet
	f.set(false, nil)
	wantStatus(t, w.next(t), false, "status ok", nil)
}

func TestWatchHungPollIsLostAfterTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	f := newFake()
	w := startWatch(t, f, 5*time.Millisecond, timeout)
	wantStatus(t, w.next(t), false, "status ok", nil)

	hung := time.Now()
	f.mu.Lock()
	f.hang = true
	f.mu.Unlock()
	s := w.next(t)
	if !s.Lost || s.Err == nil || !strings.Contains(s.Err.Error(), "power: fake: no reading for 150ms") {
		t.Fatalf("report %+v, want Lost with a no-reading error", s)
	}
	// The hung Poll's context ends after the timeout, so Watch polls again.
	f.settle(t, 2)
	if elapsed := time.Since(hung); elapsed > timeout+time.Second {
		t.Errorf("Lost after %s of a hung Poll, want about %s", elapsed, timeout)
	}
}

func TestWatchReturnsWhileHung(t *testing.T) {
	f := newFake()
	f.hang = true
	// The Poll timeout is longer than stop's deadline: a Poll that does not
	// see Watch's cancel ends only at its timeout, too late to pass.
	w := startWatch(t, f, 5*time.Millisecond, 3*waitFor)
	// The first Poll, which hangs until its context ends. (settle(t, 1)
	// waited for one more than had started: when Watch's first Poll came
	// first, for the next, due only when the hung one timed out, after
	// waitFor, which was settle's deadline too.)
	f.started(t, 1)
	w.stop(t)() // Poll sees its context end; Watch waits for it and returns
	w.none(t)
}

func TestWatchPanicsOnBadDurations(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "power: Watch") {
			t.Errorf("recover() = %v, want a power: Watch panic", r)
		}
	}()
	power.Watch(context.Background(), newFake(), 0, time.Second, func(power.Status) {})
}
