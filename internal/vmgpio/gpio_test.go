package vmgpio

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Lines of the simulated chip (named GPIO0..GPIO15).
const (
	relayFront = 0 // fail_safe maglock, active high
	relayBack  = 1 // fail_safe maglock, active low
	relayStore = 2 // fail_secure strike, active high
	relayLab   = 3 // fail_secure strike, active low
	inContact  = 4 // front contact, high = open
	inRex      = 5 // front exit button, high = pressed
	inSense    = 6 // front lock sense, high = locked
	inStoreDC  = 7 // store contact, high = open
	inPower    = 8 // power good, high = mains present
	numLines   = 16
)

// relays lists every relay line, its door and whether it is active low.
var relays = []struct {
	line      int
	door      string
	activeLow bool
}{
	{relayFront, "front", false}, {relayBack, "back", true},
	{relayStore, "store", false}, {relayLab, "lab", true},
}

const broker = "127.0.0.1:1883"

// bridgeConfig is a bridge on the simulated chip with the embedded broker.
func bridgeConfig(chip string) string {
	return fmt.Sprintf(`
bridge: {id: vm}
mqtt: {url: ""}
embedded_broker: {listen: "%s"}
http: {listen: ""}
watchdog: {relock_delay: 0s, alarm_latch: false, heartbeat_interval: 1s, heartbeat_timeout: 10s, loop_timeout: 2s}
drivers:
  - {id: hat, type: gpio, chip: %s, debounce: 300ms}
power:
  - {type: input, driver: hat, channel: GPIO%d}
doors:
  - id: front
    fail_mode: fail_safe
    relay: {driver: hat, channel: GPIO%d, active_low: false}
    contact: {driver: hat, channel: GPIO%d, pull: down}
    rex: {driver: hat, channel: GPIO%d}
    lock_sense: {driver: hat, channel: GPIO%d}
  - {id: back, fail_mode: fail_safe, relay: {driver: hat, channel: GPIO%d, active_low: true}}
  - id: store
    fail_mode: fail_secure
    relay: {driver: hat, channel: GPIO%d, active_low: false}
    contact: {driver: hat, channel: GPIO%d}
    held_open_time: 10s
  - {id: lab, fail_mode: fail_secure, relay: {driver: hat, channel: "%d", active_low: true}}
`, broker, chip, inPower, relayFront, inContact, inRex, inSense, relayBack, relayStore, inStoreDC, relayLab)
}

// rig is a running bridge on a gpio-sim chip and an MQTT client on its
// embedded broker.
type rig struct {
	t    *testing.T
	chip *simChip
	br   *proc
	mq   *testbroker.Client
}

// setPulls gives every line its resting level before the bridge starts:
// power good, door closed, button up, lock sensed unlocked, and the relay
// pins pulled to their coil's ON level when relaysOn (the worst case: only
// the bridge's request at the off level keeps them off), else to their off
// level (as the README's wiring asks).
func setPulls(c *simChip, relaysOn bool) {
	for n := 0; n < numLines; n++ {
		c.pull(n, n == inPower)
	}
	for _, r := range relays {
		c.pull(r.line, off(r.activeLow) != relaysOn)
	}
}

// off is the level of a relay line with its coil off.
func off(activeLow bool) bool { return activeLow }

// checkRelaysOff checks the trace of a span in which no relay may be on:
// every relay line must have been set (requested at a level: the request's
// direction change traces the value it drives) at least once, and every
// level set must be its off level. It returns the number of level events.
func checkRelaysOff(t *testing.T, evs []traceEvent, skip ...int) int {
	t.Helper()
	sets := map[int]int{}
	for _, ev := range evs {
		for _, r := range relays {
			if ev.line != r.line || ev.kind != "set" {
				continue
			}
			sets[r.line]++
			if want := b2i(off(r.activeLow)); ev.value != want {
				t.Fatalf("GPIO%d (%s, active_low %v) was driven %d, its ON level, while no relay may be on (event %d of %d: %v)", r.line, r.door, r.activeLow, ev.value, sets[r.line], len(evs), evs)
			}
		}
	}
	n := 0
	for _, r := range relays {
		if slices.Contains(skip, r.line) {
			continue
		}
		if sets[r.line] == 0 {
			t.Fatalf("the trace holds no level set on GPIO%d (%s): the check would pass unchecked; events: %v", r.line, r.door, evs)
		}
		n += sets[r.line]
	}
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// startRig starts the bridge and waits until it is online, checking through
// the kernel's gpio trace that every relay line was requested as an output
// at its off level and never driven on while the alarm was unknown. The
// alarm is then cleared.
func startRig(t *testing.T, c *simChip) *rig {
	return startRigWith(t, c, bridgeConfig(c.name))
}

func startRigWith(t *testing.T, c *simChip, cfg string, args ...string) *rig {
	t.Helper()
	tr := startTrace(t, c)
	br := startBridge(t, append([]string{"run", "-c", writeConfig(t, cfg)}, args...)...)
	br.waitOutput(60*time.Second, "gpio chip opened")
	testbroker.Eventually(t, 60*time.Second, func() bool { return br.exited() || dialable(broker) }, "the embedded broker listens")
	if br.exited() {
		t.Fatalf("doorbridge exited: %v\n%s", br.err, br.out)
	}
	mq := testbroker.Connect(t, "tcp://"+broker, "vmtest")
	r := &rig{t: t, chip: c, br: br, mq: mq}
	for _, d := range []string{"front", "back", "store", "lab"} {
		r.state(d, "ON", "energized", "OFF")
	}
	mq.WaitPayload("doorbridge/vm/availability", "online", 30*time.Second)
	n := checkRelaysOff(t, tr.stop())
	li := openLineInfo(t, c.name)
	for _, rl := range relays {
		out, consumer, err := li.output(rl.line)
		must(t, err)
		if !out || consumer != "doorbridge/hat" {
			t.Fatalf("GPIO%d (%s): requested as output %v by %q, want an output of \"doorbridge/hat\"", rl.line, rl.door, out, consumer)
		}
		if got := c.value(rl.line); got != off(rl.activeLow) {
			t.Fatalf("GPIO%d (%s, active_low %v) reads %v with the alarm unknown, want its off level %v", rl.line, rl.door, rl.activeLow, got, off(rl.activeLow))
		}
	}
	t.Logf("kernel gpio trace: every relay line requested at its off level and never driven on while the alarm was unknown (%d level events on the four relay lines, all off)", n)
	mq.Publish("doorbridge/alarm", "OFF", true)
	r.waitRelay(relayFront, true, "alarm clear: the maglock is powered")
	r.waitRelay(relayBack, true, "alarm clear: the maglock is powered")
	return r
}

// state waits for B/vm/<door>/<leaf> to read payload.
func (r *rig) state(door, _ string, leaf, payload string) {
	r.t.Helper()
	r.mq.WaitPayload("doorbridge/vm/"+door+"/"+leaf, payload, 30*time.Second)
}

// waitRelay waits until relay line n's coil is on (or off), whatever its
// active_low.
func (r *rig) waitRelay(n int, on bool, why string) {
	r.t.Helper()
	for _, rl := range relays {
		if rl.line == n {
			r.chip.waitValue(n, on != rl.activeLow, 30*time.Second, why)
			return
		}
	}
	r.t.Fatalf("GPIO%d is not a relay", n)
}

// count counts the messages on B/vm/<door>/<leaf> with payload.
func (r *rig) count(door, leaf, payload string) int {
	n := 0
	for _, m := range r.mq.Messages("doorbridge/vm/" + door + "/" + leaf) {
		if string(m.Payload) == payload {
			n++
		}
	}
	return n
}

func (r *rig) command(door, cmd string) {
	r.mq.Publish("doorbridge/vm/"+door+"/set", cmd, false)
}

// event waits for a door event of kind after mark.
func (r *rig) event(mark int, door, kind string) {
	r.t.Helper()
	r.mq.WaitForAfter(mark, "doorbridge/vm/"+door+"/event", 30*time.Second, func(m testbroker.Message) bool {
		var e struct {
			Type string `json:"event_type"`
		}
		return json.Unmarshal(m.Payload, &e) == nil && e.Type == kind
	})
}

func TestRelaysOnRealKernel(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	setPulls(c, true)
	r := startRig(t, c)

	t.Run("commands", func(t *testing.T) {
		r.t = t
		r.command("store", "UNLOCK")
		r.command("lab", "UNLOCK")
		r.waitRelay(relayStore, true, "store UNLOCK powers the strike")
		r.waitRelay(relayLab, true, "lab UNLOCK powers the strike (line low: active low)")
		r.command("front", "UNLOCK")
		r.waitRelay(relayFront, false, "front UNLOCK unpowers the maglock")
		r.command("front", "LOCK")
		r.command("lab", "LOCK")
		r.waitRelay(relayFront, true, "front LOCK")
		r.waitRelay(relayLab, false, "lab LOCK")
	})
	t.Run("lockdown", func(t *testing.T) {
		r.t = t
		r.mq.Publish("doorbridge/vm/lockdown/set", "ON", false)
		r.waitRelay(relayStore, false, "lockdown locks the unlocked strike")
		r.mq.WaitPayload("doorbridge/vm/lockdown/state", "ON", 30*time.Second)
		if !c.value(relayFront) {
			t.Fatal("lockdown unpowered the front maglock")
		}
		r.mq.Publish("doorbridge/vm/lockdown/set", "OFF", false)
		r.mq.WaitPayload("doorbridge/vm/lockdown/state", "OFF", 30*time.Second)
	})
	t.Run("alarm", func(t *testing.T) {
		r.t = t
		r.command("store", "UNLOCK")
		r.waitRelay(relayStore, true, "store UNLOCK")
		r.mq.Publish("doorbridge/alarm", "ON", true)
		r.waitRelay(relayFront, false, "fire alarm releases the maglock")
		r.waitRelay(relayBack, false, "fire alarm releases the active-low maglock")
		r.waitRelay(relayStore, false, "fire alarm locks the fail-secure strike")
		r.mq.Publish("doorbridge/alarm", "OFF", true)
		r.waitRelay(relayFront, true, "alarm clear")
		r.waitRelay(relayBack, true, "alarm clear")
	})
	t.Run("sigterm", func(t *testing.T) {
		r.t = t
		r.command("store", "UNLOCK")
		r.command("lab", "UNLOCK")
		r.waitRelay(relayStore, true, "store UNLOCK")
		r.waitRelay(relayLab, true, "lab UNLOCK")
		// Copies of the bridge's line requests keep the lines at the level
		// it last drove after it exits; the pulls (every relay ON) would
		// hide nothing and show a missing off write.
		release := holdRequests(t, r.br.cmd.Process.Pid)
		r.br.signal(syscall.SIGTERM, 30*time.Second)
		if r.br.err != nil {
			t.Errorf("doorbridge after SIGTERM: %v", r.br.err)
		}
		for _, rl := range relays {
			if got := c.value(rl.line); got != off(rl.activeLow) {
				t.Errorf("after SIGTERM GPIO%d (%s) was last driven %v, want its off level %v", rl.line, rl.door, got, off(rl.activeLow))
			}
		}
		release()
		for _, rl := range relays {
			c.waitValue(rl.line, !off(rl.activeLow), 10*time.Second, "released, the line reads its pull (the relay's ON level here)")
		}
	})
}

// TestSIGKILLFallsBackToPull: after SIGKILL the kernel releases the lines
// and gpio-sim, on Debian's 6.1 kernel, returns each to its pull: an
// active-low relay on a pulled-down pin is then ON. Before that the test
// holds copies of the line requests, standing in for a kernel that keeps
// released outputs: every line keeps the level last driven. That is a
// simulation, not a Raspberry Pi kernel; what a Pi does is its documented
// parameter (drivers/gpio persist.go).
func TestSIGKILLFallsBackToPull(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	setPulls(c, false)
	r := startRig(t, c)
	r.command("store", "UNLOCK")
	r.command("lab", "UNLOCK")
	r.waitRelay(relayStore, true, "store UNLOCK")
	r.waitRelay(relayLab, true, "lab UNLOCK")
	driven := map[int]bool{}
	for _, rl := range relays {
		driven[rl.line] = c.value(rl.line)
	}
	// Driven lines ignore their pull; it decides only once released.
	pulls := map[int]bool{relayFront: false, relayBack: true, relayStore: false, relayLab: false}
	for n, up := range pulls {
		c.pull(n, up)
	}
	release := holdRequests(t, r.br.cmd.Process.Pid)
	r.br.signal(syscall.SIGKILL, 30*time.Second)
	for n, v := range driven {
		if got := c.value(n); got != v {
			t.Errorf("killed, lines still requested (a Pi keeping outputs): GPIO%d reads %v, want the level last driven %v", n, got, v)
		}
	}
	t.Logf("killed, with the test holding copies of the line requests (a stand-in for a kernel that keeps released outputs; no Raspberry Pi kernel runs here): every relay stays as driven, all four ON")
	release()
	for n, up := range pulls {
		c.waitValue(n, up, 10*time.Second, "a released line reads its pull")
	}
	t.Logf("released: front/store relays off (pull-down, active high), back relay off (pull-up, active low), lab relay ON (pull-down, active low): the pull decides")
}

// TestInputsThroughKernel drives the door inputs by changing gpio-sim's pull.
func TestInputsThroughKernel(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	setPulls(c, false)
	r := startRig(t, c)
	r.state("front", "", "contact", "OFF")
	r.state("store", "", "contact", "OFF")

	t.Run("line_requests", func(t *testing.T) {
		// What the bridge asked the kernel for: both edges on every input,
		// and the contact's pull: down as its bias (the others: none set).
		li := openLineInfo(t, c.name)
		for _, n := range []int{inContact, inRex, inSense, inStoreDC, inPower} {
			info, err := li.info(n)
			must(t, err)
			edges := info.Flags&(lineEdgeRising|lineEdgeFalling) == lineEdgeRising|lineEdgeFalling
			bias := info.Flags & (lineBiasPullUp | lineBiasPullDown)
			wantBias := uint64(0)
			if n == inContact {
				wantBias = lineBiasPullDown
			}
			if info.Flags&lineUsed == 0 || !edges || bias != wantBias {
				t.Errorf("GPIO%d: line flags %#x: want requested, both edges, bias %#x", n, info.Flags, wantBias)
			}
		}
		if strings.Contains(r.br.out.String(), "no edge events on this line") {
			t.Errorf("the bridge polls an input instead of using edges:\n%s", r.br.out)
		}
	})
	t.Run("forced_open", func(t *testing.T) {
		r.t = t
		mark := r.mq.Mark()
		c.pull(inContact, true)
		r.state("front", "", "contact", "ON")
		r.state("front", "", "forced", "ON")
		r.event(mark, "front", "forced_open")
		c.pull(inContact, false)
		r.state("front", "", "forced", "OFF")
	})
	t.Run("held_open", func(t *testing.T) {
		r.t = t
		mark := r.mq.Mark()
		forced := r.count("store", "forced", "ON")
		r.command("store", "OPEN")
		r.waitRelay(relayStore, true, "store OPEN")
		c.pull(inStoreDC, true)
		r.state("store", "", "contact", "ON")
		r.state("store", "", "held", "ON")
		r.event(mark, "store", "held_open")
		if r.count("store", "forced", "ON") != forced {
			t.Fatalf("an opening during OPEN was reported forced")
		}
		c.pull(inStoreDC, false)
		r.state("store", "", "held", "OFF")
	})
	t.Run("rex_and_lock_sense", func(t *testing.T) {
		r.t = t
		c.pull(inSense, true) // the maglock's bond sensor: locked
		mark := r.mq.Mark()
		forced := r.count("front", "forced", "ON")
		c.pull(inRex, true)
		r.waitRelay(relayFront, false, "REX releases the maglock")
		r.state("front", "", "cause", "rex")
		c.pull(inRex, false)
		// Still sensed locked 2 s after its power went off.
		r.state("front", "", "release_failure", "ON")
		r.event(mark, "front", "release_failure")
		c.pull(inSense, false)
		r.state("front", "", "release_failure", "OFF")
		// A door opened during the REX release is not forced.
		c.pull(inContact, true)
		r.state("front", "", "contact", "ON")
		c.pull(inContact, false)
		r.state("front", "", "contact", "OFF")
		if r.count("front", "forced", "ON") != forced {
			t.Fatalf("opening during a REX release reported forced")
		}
	})
	t.Run("power_good", func(t *testing.T) {
		r.t = t
		r.command("front", "LOCK")
		c.pull(inPower, false)
		r.mq.WaitPayload("doorbridge/vm/power/state", "OFF", 30*time.Second)
		r.waitRelay(relayBack, false, "mains lost: the maglock is released")
		c.pull(inPower, true)
		r.mq.WaitPayload("doorbridge/vm/power/state", "ON", 30*time.Second)
		r.waitRelay(relayBack, true, "mains back: the maglock relocks")
	})
}

// TestDebounceThroughKernel: a bounce shorter than the debounce window,
// made by gpio-sim pull changes, reaches the bridge as two kernel edge
// events (its debug log shows them) and is not reported. The bounce is
// held until the bridge has seen its first edge, so it is observed, not
// missed between two reads; a bounce that lasted the window under load is
// retried, not failed (the test asserts no timing).
func TestDebounceThroughKernel(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	setPulls(c, false)
	const window = 3 * time.Second
	cfg := strings.Replace(bridgeConfig(c.name), "debounce: 300ms", "debounce: 3s", 1)
	r := startRigWith(t, c, cfg, "-log-level", "debug")
	r.state("front", "", "contact", "OFF")
	edges := func(level string) int {
		return countLines(r.br.out.String(), `msg="gpio input edge"`, `"GPIO4" (offset 4)`, "to="+level)
	}
	for attempt := 1; ; attempt++ {
		before := r.count("front", "contact", "ON")
		highs, lows := edges("High"), edges("Low")
		start := time.Now()
		c.pull(inContact, true)
		testbroker.Eventually(t, 30*time.Second, func() bool { return edges("High") > highs }, "the bridge sees the rising edge of GPIO%d", inContact)
		c.pull(inContact, false)
		testbroker.Eventually(t, 30*time.Second, func() bool { return edges("Low") > lows }, "the bridge sees the falling edge of GPIO%d", inContact)
		held := time.Since(start) // an upper bound of the bounce as the bridge saw it
		if held >= window {
			if attempt == 3 {
				t.Fatalf("three bounces lasted the %v debounce window under load (last %v): the check could not run", window, held)
			}
			t.Logf("bounce %d lasted %v ≥ %v under load: retrying", attempt, held, window)
			r.state("front", "", "contact", "OFF")
			continue
		}
		// A real opening, read through the same loop, orders the messages.
		c.pull(inStoreDC, true)
		r.state("store", "", "contact", "ON")
		if r.count("front", "contact", "ON") != before {
			t.Fatalf("a %v bounce (shorter than the %v debounce) was reported: %v", held, window, r.mq.Messages("doorbridge/vm/front/contact"))
		}
		t.Logf("bounce of at most %v: both kernel edge events seen by the bridge (%s), the contact stayed closed", held.Round(time.Millisecond), grepLine(r.br.out.String(), `"GPIO4" (offset 4) on `+c.name+`" to=Low`))
		c.pull(inStoreDC, false)
		r.state("store", "", "contact", "OFF")
		return
	}
}

// countLines counts the lines of a log that hold every one of parts.
func countLines(out string, parts ...string) int {
	n := 0
	for _, l := range strings.Split(strings.ReplaceAll(out, `\"`, `"`), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}
