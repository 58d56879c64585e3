package console_test

import (
	"net/http"
	"net/url"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/config"
)

// Concurrent wrong passwords cannot all be compared before the first is
// counted: at most the limit's five are compared, the rest are refused,
// and once five are counted the right password is refused.
func TestConsoleLoginRateLimitConcurrent(t *testing.T) {
	slow, err := bcrypt.GenerateFromPassword([]byte(password), 8) // a window for the guesses to overlap
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, config.ConsoleOn, func(c *config.Config) { c.HTTP.ConsolePasswordHash = string(slow) })
	const guesses = 20
	var wg sync.WaitGroup
	codes := make(chan int, guesses)
	start := make(chan struct{})
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := http.PostForm(e.url+"/console/api/login", url.Values{"password": {"guess " + string(rune('a'+i))}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(codes)
	compared := 0
	for c := range codes {
		switch c {
		case http.StatusUnauthorized:
			compared++
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		default:
			t.Errorf("a concurrent wrong password got %d", c)
		}
	}
	if compared > 5 {
		t.Errorf("%d of %d concurrent wrong passwords were compared, want at most 5", compared, guesses)
	}
	// At most one comparison per client is in flight, so the burst may
	// have counted fewer than five: the rest, one at a time, pause it.
	for ; compared < 5; compared++ {
		if code, _ := e.browser().login("one more guess"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d after the burst = %d, want 401", compared+1, code)
		}
	}
	if code, _ := e.browser().login(password); code != http.StatusTooManyRequests {
		t.Errorf("the right password after the burst = %d, want 429", code)
	}
}

// A login ends the session the browser had: a session id planted in the
// browser before the login is worth nothing after it.
func TestConsoleLoginDropsTheOldSession(t *testing.T) {
	e := newEnv(t, config.ConsoleOn)
	b := e.browser()
	b.login(password)
	u, _ := url.Parse(e.url)
	old := b.hc.Jar.Cookies(u)
	b.login(password)
	planted := e.browser()
	planted.hc.Jar.SetCookies(u, old)
	if code, _ := planted.get("/console/api/view"); code != http.StatusUnauthorized {
		t.Errorf("the session before the login, after it: view = %d, want 401", code)
	}
	if code, _ := b.get("/console/api/view"); code != 200 {
		t.Errorf("the new session: view = %d, want 200", code)
	}
}
