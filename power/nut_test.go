package power_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/power"
	"github.com/doorbridge/doorbridge/power/nuttest"
)

// statusWait bounds a status change travelling file → dummy-ups → upsd → Watch.
const statusWait = 10 * time.Second

func newNUT(t testing.TB, u *nuttest.UPSD, opts power.NUTOptions) *power.NUT {
	t.Helper()
	opts.Host, opts.Port = u.Host(), u.Port()
	if opts.UPS == "" {
		opts.UPS = u.UPS()
	}
	n, err := power.NewNUT(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func wantErrContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// nextReport waits for a report from Watch, up to statusWait.
func nextReport(t *testing.T, reports <-chan power.Status) power.Status {
	t.Helper()
	select {
	case s := <-reports:
		return s
	case <-time.After(statusWait):
		t.Fatalf("no report from Watch within %s", statusWait)
		return power.Status{}
	}
}

func TestNUTEndToEnd(t *testing.T) {
	u := nuttest.Start(t)
	prefix := fmt.Sprintf("power: nut: %s@%s: ", u.UPS(), u.Addr())

	n := newNUT(t, u, power.NUTOptions{DialTimeout: time.Second})
	if got, want := n.Name(), "nut:"+u.UPS()+"@"+u.Addr(); got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	lost, detail, err := n.Poll(context.Background())
	if err != nil || lost || detail != `ups.status "OL"` {
		t.Fatalf("Poll() = %v, %q, %v; want false, `ups.status \"OL\"`, nil", lost, detail, err)
	}

	const interval, timeout = 100 * time.Millisecond, time.Second
	wn := newNUT(t, u, power.NUTOptions{DialTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	reports := make(chan power.Status, 16)
	go func() {
		defer close(done)
		power.Watch(ctx, wn, interval, timeout, func(s power.Status) { reports <- s })
	}()

	want := func(lost bool, detail string) {
		t.Helper()
		s := nextReport(t, reports)
		if s.Source != wn.Name() || s.Lost != lost || s.Detail != detail || s.Err != nil {
			t.Fatalf("report %+v, want Lost=%v Detail=%q", s, lost, detail)
		}
	}
	want(false, `ups.status "OL"`)
	for _, step := range []struct {
		status string
		lost   bool
	}{
		{"OB", true},
		{"OL", false},
		{"OB LB", true},
		{"OL CHRG", false},
		{"OL LB", true}, // low battery while on line: treated as lost
		{"OL", false},
	} {
		start := time.Now()
		u.SetStatus(t, step.status)
		want(step.lost, fmt.Sprintf("ups.status %q", step.status))
		t.Logf("status %q reported after %s", step.status, time.Since(start).Round(time.Millisecond))
	}

	// upsd gone: connections are refused, and Watch turns Lost after the timeout.
	killed := time.Now()
	u.KillUPSD(t)
	_, _, err = n.Poll(context.Background())
	wantErrContains(t, err, prefix, "connection refused")
	s := nextReport(t, reports)
	if !s.Lost || s.Err == nil {
		t.Fatalf("report %+v, want Lost with Err", s)
	}
	wantErrContains(t, s.Err, prefix, "connection refused")
	elapsed := time.Since(killed)
	t.Logf("Lost with Err %q after %s", s.Err, elapsed.Round(time.Millisecond))
	if elapsed < timeout-interval {
		t.Errorf("Lost %s after upsd was killed, want at least %s", elapsed, timeout-interval)
	}

	// upsd back: both sources reconnect by themselves.
	u.StartUPSD(t)
	want(false, `ups.status "OL"`)
	if lost, _, err := n.Poll(context.Background()); err != nil || lost {
		t.Fatalf("Poll() after restart = %v, %v; want false, nil", lost, err)
	}
}

func TestNUTErrors(t *testing.T) {
	u := nuttest.Start(t)

	t.Run("unknown ups", func(t *testing.T) {
		n := newNUT(t, u, power.NUTOptions{UPS: "nope"})
		_, _, err := n.Poll(context.Background())
		wantErrContains(t, err, "power: nut: nope@"+u.Addr()+": ERR UNKNOWN-UPS")
	})

	t.Run("login", func(t *testing.T) {
		// upsd answers OK to USERNAME and PASSWORD and checks them only for
		// commands that need them; this proves the exchange (and the quoting
		// of an awkward password) keeps the connection in step.
		n := newNUT(t, u, power.NUTOptions{Username: "monitor", Password: `se cret"\`})
		for range 3 {
			if lost, detail, err := n.Poll(context.Background()); err != nil || lost {
				t.Fatalf("Poll() = %v, %q, %v; want false, nil", lost, detail, err)
			}
		}
	})

	t.Run("silent upsd", func(t *testing.T) {
		n := newNUT(t, u, power.NUTOptions{DialTimeout: 300 * time.Millisecond})
		if _, _, err := n.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		u.FreezeUPSD(t)
		thawed := false
		thaw := func() {
			if !thawed {
				thawed = true
				u.ThawUPSD(t)
			}
		}
		defer thaw()

		start := time.Now()
		_, _, err := n.Poll(context.Background())
		wantErrContains(t, err, "power: nut: "+u.UPS()+"@"+u.Addr()+": ", "i/o timeout")
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Poll took %s against a silent upsd, want about the 300ms DialTimeout", elapsed)
		}

		// Cancelling ctx interrupts a request, whatever DialTimeout says.
		slow := newNUT(t, u, power.NUTOptions{DialTimeout: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, _, err = slow.Poll(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Poll() with a 100ms ctx = %v, want context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Poll took %s with a 100ms ctx", elapsed)
		}

		thaw()
		deadline := time.Now().Add(statusWait)
		for {
			lost, _, err := n.Poll(context.Background())
			if err == nil && !lost {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Poll() after thaw = %v, %v", lost, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("driver gone", func(t *testing.T) {
		n := newNUT(t, u, power.NUTOptions{})
		u.KillDriver(t)
		deadline := time.Now().Add(statusWait)
		for {
			_, _, err := n.Poll(context.Background())
			if err != nil && strings.Contains(err.Error(), "ERR DRIVER-NOT-CONNECTED") {
				wantErrContains(t, err, "power: nut: "+u.UPS()+"@"+u.Addr()+": ERR DRIVER-NOT-CONNECTED")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Poll() error %v, want ERR DRIVER-NOT-CONNECTED", err)
			}
			time.Sleep(50 * time.Millisecond)
		}

		// The driver back: upsd reconnects to it, and the same source reads
		// again on its kept connection.
		u.StartDriver(t)
		u.WaitStatus(t, "OL", statusWait)
		if lost, _, err := n.Poll(context.Background()); err != nil || lost {
			t.Fatalf("Poll() after driver restart = %v, %v; want false, nil", lost, err)
		}
	})
}

func TestNewNUTOptions(t *testing.T) {
	n, err := power.NewNUT(power.NUTOptions{UPS: "ups1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.Name(), "nut:ups1@127.0.0.1:3493"; got != want {
		t.Errorf("Name() with defaults = %q, want %q", got, want)
	}
	if n, err := power.NewNUT(power.NUTOptions{Host: "::1", UPS: "u"}); err != nil || n.Name() != "nut:u@[::1]:3493" {
		t.Errorf("IPv6 host: %v", err)
	}
	for _, tc := range []struct {
		opts power.NUTOptions
		want string
	}{
		{power.NUTOptions{}, "power: nut: ups name is required"},
		{power.NUTOptions{UPS: "a b"}, `power: nut: ups name "a b" has spaces, quotes or control characters`},
		{power.NUTOptions{UPS: "u\nLOGOUT"}, `power: nut: ups name "u\nLOGOUT" has spaces`},
		{power.NUTOptions{UPS: "u", Port: 70000}, "power: nut: port 70000 out of range 1..65535"},
		{power.NUTOptions{UPS: "u", DialTimeout: -time.Second}, "power: nut: negative dial timeout -1s"},
		{power.NUTOptions{UPS: "u", Username: "x y"}, `power: nut: username "x y" has spaces`},
		{power.NUTOptions{UPS: "u", Username: "x", Password: "a\nb"}, "power: nut: password has control characters"},
		{power.NUTOptions{UPS: "u", Password: "p"}, "power: nut: password set without username"},
	} {
		_, err := power.NewNUT(tc.opts)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewNUT(%+v) error = %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestNUTConnectionRefused(t *testing.T) {
	// A port that was free a moment ago; nothing listens there.
	ln := listenFree(t)
	addr := ln.Addr().String()
	ln.Close()
	host, port := splitHostPort(t, addr)
	n, err := power.NewNUT(power.NUTOptions{Host: host, Port: port, UPS: "ups1"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = n.Poll(context.Background())
	wantErrContains(t, err, "power: nut: ups1@"+addr+": ", "connection refused")
}

// BenchmarkNUTPoll measures one GET VAR round trip to a real upsd on an open
// connection.
func BenchmarkNUTPoll(b *testing.B) {
	u := nuttest.Start(b)
	n := newNUT(b, u, power.NUTOptions{})
	ctx := context.Background()
	if _, _, err := n.Poll(ctx); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := n.Poll(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
