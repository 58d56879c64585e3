package console_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/console"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// The console in a real browser: Debian's chromium driven over the
// DevTools protocol. Behind DOORBRIDGE_TEST_BROWSER=1 (.ci/run installs
// chromium and sets it). With DOORBRIDGE_SCREENSHOTS=DIR it also saves the
// screenshots of docs/ there.

type page struct {
	t   *testing.T
	ctx context.Context
}

func newPage(t *testing.T) *page {
	if os.Getenv("DOORBRIDGE_TEST_BROWSER") == "" {
		t.Skip("set DOORBRIDGE_TEST_BROWSER=1 to run the browser tests (needs chromium)")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("DOORBRIDGE_TEST_BROWSER is set but chromium is not installed (apt-get install chromium): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(412, 915), // a phone
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &page{t: t, ctx: ctx}
}

func (p *page) do(why string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", why, err)
	}
}

// until waits for the JavaScript expression to be true on the page and
// returns how long that took.
func (p *page) until(expr, why string) time.Duration {
	p.t.Helper()
	return p.within(wait, expr, why)
}

// within is until with its own deadline.
func (p *page) within(wait time.Duration, expr, why string) time.Duration {
	p.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		p.t.Fatalf("%s: %s not true within %v (%v); the page says:\n%s", why, expr, wait, err, text)
	}
	return time.Since(start)
}

func (p *page) eval(expr string) any {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[any](expr, chromedp.EvalAsValue, awaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func awaitPromise(p *runtime.EvaluateParams) { yes := true; p.AwaitPromise = &yes }

// shot saves a screenshot of the viewport (a phone screen) as DIR/name when
// DOORBRIDGE_SCREENSHOTS=DIR.
func (p *page) shot(name string) {
	dir := os.Getenv("DOORBRIDGE_SCREENSHOTS")
	if dir == "" {
		return
	}
	buf, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot()) // the phone-sized viewport
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func doorState(id, state string) string {
	return `document.querySelector('#door-` + id + `')?.dataset.state === '` + state + `'`
}

func pageSays(text string) string {
	return `document.body.innerText.includes(` + jsString(text) + `)`
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func TestBrowserConsole(t *testing.T) {
	p := newPage(t)
	e := newEnv(t, config.ConsoleOn)
	e.ready()

	// Log in; every door shows.
	p.do("open the console", chromedp.Navigate(e.url+"/"))
	p.until(`!document.querySelector('#login').hidden`, "the login form shows")
	p.do("log in", chromedp.SendKeys(`#login input[name=password]`, password), chromedp.Click(`#login button`))
	p.until(doorState("fs", "LOCKED")+" && "+doorState("fsec", "LOCKED"), "both doors show locked")
	p.until(pageSays("Broker link")+" && "+pageSays("healthy"), "the broker link shows healthy")
	p.shot("console-normal.png")

	// A wrong code is refused, and counts toward the lockout shared with MQTT.
	p.do("UNLOCK with a wrong code", chromedp.SendKeys(`input[name=code-fs]`, "0000"), chromedp.Click(`#door-fs button[name=UNLOCK]`))
	p.until(`document.querySelector('#msg').innerText === 'wrong code'`, "the wrong code is refused")
	e.c.Publish(e.topic("fs", "set"), `{"action": "UNLOCK", "code": "9999"}`, false)
	p.until(`document.querySelector('#door-fs').innerText.includes('locked out for')`, "the keypad lockout shows")
	p.do("UNLOCK with the right code during the lockout", chromedp.SendKeys(`input[name=code-fs]`, doorCode), chromedp.Click(`#door-fs button[name=UNLOCK]`))
	p.until(`document.querySelector('#msg').innerText.startsWith('codes locked out for')`, "the right code is refused during the lockout")

	// A fire alarm on MQTT shows on the page.
	e.c.Publish("db/alarm", "ON", true)
	took := p.until(doorState("fs", "UNLOCKED")+" && !document.querySelector('#hazards').hidden", "the alarm releases the maglock on the page")
	t.Logf("fire alarm published on MQTT -> shown on the page: %v", took)
	p.until(`document.querySelector('#door-fs').innerText.includes('LOCK refused: hazard "alarm" is active') && !document.querySelector('#door-fs button[name=LOCK]')`, "LOCK is not offered during the alarm")
	p.until(pageSays("Reset not offered: alarm still active (db/alarm=alarm)"), "the reset is not offered while the alarm is active, with the reason")
	p.shot("console-alarm.png")
	// The refusal itself, as a script on the page would meet it.
	if got := p.eval(`fetch('/console/api/action', {method: 'POST', headers: {'X-CSRF-Token': csrf}, body: JSON.stringify({kind: 'reset'})}).then(r => r.json()).then(j => j.message)`); got != "reset refused: alarm still active (db/alarm=alarm)" {
		t.Errorf("reset during the alarm: %v", got)
	}
	e.c.Publish("db/alarm", "OFF", true)
	p.until(`[...document.querySelectorAll('#bridge button')].some(b => b.textContent === 'Reset fire release')`, "the reset is offered once the alarm is clear")
	p.do("reset", chromedp.Click(`//button[text()='Reset fire release']`))
	p.until(`document.querySelector('#msg').innerText.startsWith('fire release reset')`, "the reset is accepted")
	p.until(doorState("fs", "LOCKED"), "the maglock relocks after relock_delay")
	p.until(pageSays("fire release latch cleared"), "the events list the reset")

	// CSRF and a missing session are refused.
	if got := p.eval(`fetch('/console/api/action', {method: 'POST', body: JSON.stringify({kind: 'lockdown', request: 'ON'})}).then(r => r.status)`); got != float64(403) {
		t.Errorf("action without the CSRF token: status %v, want 403", got)
	}
	if got := p.eval(`fetch('/console/api/action', {method: 'POST', credentials: 'omit', headers: {'X-CSRF-Token': csrf}, body: JSON.stringify({kind: 'lockdown', request: 'ON'})}).then(r => r.status)`); got != float64(401) {
		t.Errorf("action without the session cookie: status %v, want 401", got)
	}

	// The broker dies: the page still loads, shows the broker hazard and the released maglock.
	e.broker.Kill()
	p.do("reload", chromedp.Reload())
	p.until(doorState("fs", "UNLOCKED")+" && "+pageSays("Broker link")+" && "+pageSays("down"), "the released maglock and the broker link down show without a broker")
	p.until(`document.querySelector('#hazards').innerText.includes('broker') && !document.querySelector('#door-fs button[name=LOCK]')`, "the broker hazard shows, and LOCK is not offered")
	p.until(doorState("fsec", "LOCKED"), "the strike stays locked")
	p.shot("console-broker-down.png")

	// The bridge goes away: the page says so.
	e.stop()
	p.until(`!document.querySelector('#lost').hidden && document.querySelector('#live').textContent === 'not live' && document.body.classList.contains('lost')`, "the page says it is not live, and greys out")
	p.shot("console-lost.png")
}

// TestBrowserReadOnlyFirstRender loads the read-only console (the demo's
// setting) and reports its weight and time to first render.
func TestBrowserReadOnlyFirstRender(t *testing.T) {
	p := newPage(t)
	e := newEnv(t, config.ConsoleReadOnly)
	e.ready()
	// The first load starts a fresh browser profile; the second is the one
	// a person meets on an open browser.
	for _, load := range []string{"first load", "second load"} {
		p.do("open the console", chromedp.Navigate(e.url+"/"))
		took := p.until(doorState("fs", "LOCKED"), "the doors show")
		fcp := p.eval(`performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1`)
		bytes := p.eval(`[performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')].filter(r => !r.name.includes('/stream')).reduce((n, r) => n + r.encodedBodySize, 0)`)
		t.Logf("%s: first contentful paint %v ms, doors shown %v after load; page weight %v bytes (HTML, CSS, JS, session, events; the stream excluded)", load, fcp, took, bytes)
	}
	if p.eval(`document.querySelectorAll('#doors button').length`) != float64(0) {
		t.Errorf("a read-only console offers actions")
	}
	p.shot("console-read-only.png")
	// An update saying the loop does not answer (the stream itself is
	// fine) greys the cards out too: they show a state nobody keeps. The
	// page is fed the two updates the hub sends, in turn.
	p.eval(`render({error: 'the control loop did not answer in time', audit_seq: auditSeq}), true`)
	p.until(`document.querySelector('#live').textContent === 'loop not answering' && document.body.classList.contains('lost') && !document.querySelector('#lost').hidden`, "the page greys out while the loop does not answer")
	p.eval(`render({view: view, audit_seq: auditSeq}), true`)
	p.until(`document.querySelector('#live').textContent === 'live' && !document.body.classList.contains('lost')`, "the page is live again once the loop answers")
}

// The page follows the bridge across the ends of its stream: one ended
// after its lifetime ("bye") is reopened without the page ever saying
// "not live"; one refused (too many pages open from this address) makes
// the page say "not live" and is reopened once there is room.
func TestBrowserStreamReconnects(t *testing.T) {
	p := newPage(t)
	e := newEnv(t, config.ConsoleReadOnly)
	e.ready()
	console.SetStreamLife(e.con, 2*time.Second)
	p.do("open the console", chromedp.Navigate(e.url+"/"))
	p.until(doorState("fs", "LOCKED")+` && document.querySelector('#live').textContent === 'live'`, "the page is live")
	p.eval(`window.wasNotLive = false; new MutationObserver(() => { if (document.querySelector('#live').textContent !== 'live') window.wasNotLive = true; }).observe(document.querySelector('#live'), {childList: true, characterData: true, subtree: true})`)
	opened := console.StreamsOpened(e.con)
	testbroker.Eventually(t, 15*time.Second, func() bool { return console.StreamsOpened(e.con) >= opened+3 }, "the page reopens its stream after each lifetime")
	e.c.Publish("db/alarm", "ON", true)
	p.until(doorState("fs", "UNLOCKED"), "a change shows after the reopened streams")
	if p.eval(`window.wasNotLive`) != false {
		t.Errorf("the page said it was not live while its stream was ended and reopened after its lifetime")
	}

	// Every stream this address may have (2), taken: the page's is refused.
	console.SetStreamLife(e.con, time.Hour)
	p.do("leave the console", chromedp.Navigate("about:blank"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := 0
	testbroker.Eventually(t, 15*time.Second, func() bool {
		if resp, _ := openStream(t, ctx, http.DefaultClient, e.url); resp != nil {
			held++
			go func() { io.Copy(io.Discard, resp.Body); resp.Body.Close() }()
		}
		return held == 2
	}, "every stream of this address taken")
	p.do("open the console again", chromedp.Navigate(e.url+"/"))
	p.until(`document.querySelector('#live').textContent === 'not live' && !document.querySelector('#lost').hidden`, "the refused page says it is not live")
	cancel()
	p.within(20*time.Second, `document.querySelector('#live').textContent === 'live'`, "the page reopens its stream once there is room")
}

// A drill from the page needs the console password typed again; once
// started, the page says so only after the bridge released the doors.
func TestBrowserDrill(t *testing.T) {
	p := newPage(t)
	e := newEnv(t, config.ConsoleOn)
	e.ready()
	p.do("open the console", chromedp.Navigate(e.url+"/"))
	p.until(`!document.querySelector('#login').hidden`, "the login form shows")
	p.do("log in", chromedp.SendKeys(`#login input[name=password]`, password), chromedp.Click(`#login button`))
	p.until(`!!document.querySelector('input[name=drill-password]')`, "the drill asks for the password")
	p.eval(`window.confirm = () => true`)
	drill := `//button[starts-with(text(), 'Start drill')]`
	p.do("drill with a wrong password", chromedp.SendKeys(`input[name=drill-password]`, "wrong"), chromedp.Click(drill))
	p.until(`document.querySelector('#msg').innerText === 'Refused: wrong password'`, "the wrong password is refused")
	p.until(doorState("fs", "LOCKED"), "the maglock stays locked")
	p.do("drill with the password", chromedp.SendKeys(`input[name=drill-password]`, password), chromedp.Click(drill))
	p.until(`document.querySelector('#msg').innerText.startsWith('drill started')`, "the drill starts")
	p.until(doorState("fs", "UNLOCKED"), "the drill released the maglock")
	p.until(pageSays("console: drill ON requested — from 127.0.0.1:"), "the events list the console's request")
}
