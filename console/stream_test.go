package console_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/console"
)

// openStream opens the event stream with hc; it returns the response (nil
// when refused) and the status.
func openStream(t *testing.T, ctx context.Context, hc *http.Client, url string) (*http.Response, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/console/api/stream", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("open stream: %v", err)
		return nil, 0
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	return resp, 200
}

// Pages left open cannot take every connection of the bridge's HTTP
// server: with the 64 it serves asked for as event streams, one client
// gets its share and /readyz and /metrics still answer.
func TestConsoleStreamsLeaveRoomForReadyz(t *testing.T) {
	e := newEnv(t, config.ConsoleReadOnly)
	e.ready()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes := map[int]int{}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, code := openStream(t, ctx, hc, e.url)
			if resp != nil {
				go func() { io.Copy(io.Discard, resp.Body); resp.Body.Close() }()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 2 || codes[http.StatusServiceUnavailable] != 62 {
		t.Errorf("64 streams from one client: %v, want 2 open and 62 refused with 503", codes)
	}
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	for _, path := range []string{"/readyz", "/metrics", "/console/api/view"} {
		resp, err := probe.Get(e.url + path)
		if err != nil {
			t.Fatalf("GET %s with the streams open: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s with the streams open = %d, want 200", path, resp.StatusCode)
		}
	}
}

// readUntilEnd reads the stream until it ends, and reports whether it
// ended cleanly (the server closed it) within the deadline, and whether a
// "bye" came before.
func readUntilEnd(t *testing.T, resp *http.Response, deadline time.Duration) (ended, bye bool) {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		r := bufio.NewReader(resp.Body)
		sawBye := false
		for {
			line, err := r.ReadString('\n')
			sawBye = sawBye || strings.HasPrefix(line, "event: bye")
			if err != nil {
				done <- sawBye
				return
			}
		}
	}()
	select {
	case bye = <-done:
		return true, bye
	case <-time.After(deadline):
		resp.Body.Close()
		<-done
		return false, false
	}
}

// A logged-out session's stream ends: the session is checked on every
// ping, not only when the stream opens.
func TestConsoleStreamEndsWithTheSession(t *testing.T) {
	e := newEnv(t, config.ConsoleOn)
	b := e.browser()
	b.login(password)
	hc := &http.Client{Jar: b.hc.Jar}
	resp, code := openStream(t, context.Background(), hc, e.url)
	if resp == nil {
		t.Fatalf("stream = %d, want 200", code)
	}
	defer resp.Body.Close()
	if code, out := b.do("POST", "/console/api/logout", "", "", map[string]string{"X-CSRF-Token": b.csrf}); code != 200 {
		t.Fatalf("logout = %d %v", code, out)
	}
	if ended, _ := readUntilEnd(t, resp, 15*time.Second); !ended {
		t.Fatalf("the stream of a logged-out session still runs 15 s after the logout")
	}
}

// A stream ends after its lifetime, saying "bye" first (the page then
// reconnects): no connection is held for ever.
func TestConsoleStreamLifetime(t *testing.T) {
	e := newEnv(t, config.ConsoleReadOnly)
	console.SetStreamLife(e.con, 500*time.Millisecond)
	resp, code := openStream(t, context.Background(), http.DefaultClient, e.url)
	if resp == nil {
		t.Fatalf("stream = %d, want 200", code)
	}
	defer resp.Body.Close()
	if ended, bye := readUntilEnd(t, resp, 15*time.Second); !ended || !bye {
		t.Fatalf("stream with a 500 ms lifetime: ended %v, bye %v within 15 s; want both", ended, bye)
	}
}
