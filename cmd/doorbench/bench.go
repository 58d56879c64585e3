package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// benchOptions are doorbench's flags.
type benchOptions struct {
	Doors             []int
	Brokers           []string
	Rounds            int
	Idle              time.Duration
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	RelockDelay       time.Duration
	Commands          int           // commands in the stream (the commands phase)
	CommandGap        time.Duration // between two commands of the stream
	CommandDoors      int           // the doors the stream takes turns on (0: all)
	Watch             string
	PahoClients       int
	Mosquitto         string
	StateDir          string
	Only              map[string]bool // empty: everything
	Console           bool            // web console on, with a page's event stream open (steady)
}

// want reports whether phase is measured.
func (o benchOptions) want(phase string) bool { return len(o.Only) == 0 || o.Only[phase] }

// bench holds what every measurement shares.
type bench struct {
	opts benchOptions
	bin  string // the doorbridge binary
	dir  string // scratch directory
	log  io.Writer
	seq  int // numbers scratch directories
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) scratch(name string) (string, error) {
	b.seq++
	d := filepath.Join(b.dir, fmt.Sprintf("%03d-%s", b.seq, name))
	return d, os.MkdirAll(d, 0o755)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// target is the broker a bridge is measured against.
type target struct {
	kind string                // one of brokerKinds
	mosq *testbroker.Mosquitto // for a mosquitto kind
}

// brokerKinds are the targets --broker can name: a stock mosquitto (what
// users run), one tuned with set_tcp_nodelay, and the bridge's embedded broker.
var brokerKinds = []string{"mosquitto", "mosquitto-nodelay", "embedded"}

// isMosquitto reports whether a broker kind is a mosquitto doorbench starts.
func isMosquitto(kind string) bool { return kind != "embedded" }

// external reports whether the broker runs outside the bridge (a mosquitto).
func (t *target) external() bool { return t.mosq != nil }

// config returns a bridge config for n doors on this target, writing its
// state file in dir.
func (b *bench) config(t *target, n int, dir string) (bridgeConfig, error) {
	c := bridgeConfig{
		ID: "bench", Doors: n, StateFile: filepath.Join(dir, "relays.json"),
		StateDir:          filepath.Join(dir, "state"), // never the user's default (R23 state would carry over between runs)
		HeartbeatInterval: b.opts.HeartbeatInterval, HeartbeatTimeout: b.opts.HeartbeatTimeout,
		RelockDelay: b.opts.RelockDelay, Console: b.opts.Console,
	}
	var err error
	if c.HTTP, err = freeAddr(); err != nil {
		return c, err
	}
	if c.Embedded, err = freeAddr(); err != nil {
		return c, err
	}
	if t.external() {
		c.MQTTURL = "tcp://" + t.mosq.Addr("mqtt")
	}
	return c, nil
}

// brokerAddr is where clients reach the broker of a bridge with config c.
func (t *target) brokerAddr(c bridgeConfig) string {
	if t.external() {
		return t.mosq.Addr("mqtt")
	}
	return c.Embedded
}

func writeConfig(c bridgeConfig, dir string) (string, error) {
	p := filepath.Join(dir, "config.yaml")
	return p, os.WriteFile(p, []byte(c.yaml()), 0o600)
}

// measure runs every figure for one broker kind and door count.
func (b *bench) measure(kind string, n int) (*run, error) {
	r := newRun(kind, n)
	r.HeartbeatTimeoutMS = ms(b.opts.HeartbeatTimeout)
	t := &target{kind: kind}
	if isMosquitto(kind) {
		dir, err := b.scratch(kind)
		if err != nil {
			return nil, err
		}
		if t.mosq, err = startMosquitto(b.opts.Mosquitto, dir, kind == "mosquitto-nodelay"); err != nil {
			return nil, err
		}
		defer t.mosq.Kill()
	} else {
		r.NA["broker_kill_release_ms"] = "the embedded broker runs inside the bridge process"
		r.NA["silent_link_release_ms"] = "the bridge reaches its embedded broker without a network link"
	}
	if err := b.baseline(t, r); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if b.opts.want("startup") {
		b.logf("%s, %d doors: start-up (%d rounds)", kind, n, b.opts.Rounds)
		if err := b.startup(t, n, r); err != nil {
			return nil, fmt.Errorf("start-up: %w", err)
		}
	}
	if err := b.steady(t, n, r); err != nil {
		return nil, err
	}
	if err := b.faults(t, n, r); err != nil { // faults.go
		return nil, err
	}
	if t.external() && b.opts.want("silent") {
		b.logf("%s, %d doors: silent link (%d rounds, heartbeat_timeout %v)", kind, n, b.opts.Rounds, b.opts.HeartbeatTimeout)
		if err := b.silentLink(t, n, r); err != nil {
			return nil, fmt.Errorf("silent link: %w", err)
		}
	}
	r.finish()
	return r, nil
}

// startup times fresh bridges from exec to every relay off in the state file
// (startup_safe_ms) and to every door's discovery and state published
// (startup_ready_ms), and records each one's peak RSS.
func (b *bench) startup(t *target, n int, r *run) error {
	for round := range b.opts.Rounds {
		for attempt := 1; ; attempt++ {
			safe, ready, rss, log, err := b.startupRound(t, n, round)
			if err == nil {
				r.add("startup_safe_ms", safe)
				r.add("startup_ready_ms", ready)
				r.add("rss_mb", rss)
				break
			}
			// A port doorbench picked as free may be taken by someone else
			// before the bridge binds it: not the bridge's doing, try again.
			if attempt < 3 && portTaken(log) {
				b.logf("round %d: a port picked as free was taken meanwhile; again with other ports", round)
				continue
			}
			return fmt.Errorf("round %d: %w (log %s)", round, err, log)
		}
	}
	return nil
}

// portTaken reports whether the bridge's log says a listen address was in use.
func portTaken(logPath string) bool {
	b, err := os.ReadFile(logPath)
	return err == nil && strings.Contains(string(b), "address already in use")
}

// startupRound starts one fresh bridge and returns its figures.
func (b *bench) startupRound(t *target, n, round int) (safe, ready, rss float64, log string, err error) {
	dir, err := b.scratch(fmt.Sprintf("startup-%d-%d", n, round))
	if err != nil {
		return 0, 0, 0, "", err
	}
	log = filepath.Join(dir, "doorbridge.log")
	if t.external() {
		// A fresh broker: no retained messages from the last round.
		if err := t.mosq.Restart(); err != nil {
			return 0, 0, 0, log, err
		}
	}
	c, err := b.config(t, n, dir)
	if err != nil {
		return 0, 0, 0, log, err
	}
	cfgPath, err := writeConfig(c, dir)
	if err != nil {
		return 0, 0, 0, log, err
	}
	w, err := watchRelays(c.StateFile, b.opts.Watch, nil)
	if err != nil {
		return 0, 0, 0, log, err
	}
	defer w.close()
	tr := newReadyTracker(c)
	var cl *rawClient
	defer func() {
		if cl != nil {
			cl.close()
		}
	}()
	subscribe := func() error {
		return cl.subscribe("homeassistant/device/+/config", c.prefix()+"/+/state")
	}
	if t.external() {
		if cl, err = dialMQTT(t.brokerAddr(c), "bench-watch", tr.onMsg); err != nil {
			return 0, 0, 0, log, err
		}
		if err := subscribe(); err != nil {
			return 0, 0, 0, log, err
		}
	}
	p, err := startBridge(b.bin, cfgPath, log)
	if err != nil {
		return 0, 0, 0, log, err
	}
	err = func() error {
		all := append(c.channels(true), c.channels(false)...)
		v, err := w.waitFor(0, allLevel(all, false), 10*time.Second)
		if err != nil {
			return fmt.Errorf("relays off at start: %w", err)
		}
		safe = ms(v.At.Sub(p.started))
		if !t.external() {
			// The broker is in the bridge: connect as soon as it listens and
			// take the retained messages (an upper bound by the polling).
			deadline := time.Now().Add(10 * time.Second)
			for cl == nil {
				if cl, err = dialMQTT(t.brokerAddr(c), "bench-watch", tr.onMsg); err == nil {
					break
				}
				if !p.running() || time.Now().After(deadline) {
					return fmt.Errorf("embedded broker: %w", err)
				}
				time.Sleep(2 * time.Millisecond) // the broker is starting
			}
			if err := subscribe(); err != nil {
				return err
			}
		}
		select {
		case <-tr.done:
			ready = ms(tr.at.Sub(p.started))
		case <-time.After(10 * time.Second):
			tr.mu.Lock()
			defer tr.mu.Unlock()
			return fmt.Errorf("discovery and state of %d doors not published within 10s (%d discovery, %d state seen)", n, len(tr.disc), len(tr.state))
		}
		if rss, err = p.vmHWM(); err != nil {
			return err
		}
		return nil
	}()
	if serr := p.stop(syscall.SIGTERM, 10*time.Second); err == nil {
		err = serr
	}
	return safe, ready, rss, log, err
}

// readyTracker notices when every door's discovery and state have arrived.
type readyTracker struct {
	mu    sync.Mutex
	c     bridgeConfig
	want  map[string]bool // topic -> is discovery
	disc  map[string]bool
	state map[string]bool
	done  chan struct{}
	at    time.Time
}

func newReadyTracker(c bridgeConfig) *readyTracker {
	t := &readyTracker{c: c, want: map[string]bool{}, disc: map[string]bool{}, state: map[string]bool{}, done: make(chan struct{})}
	for i := range c.Doors {
		t.want[c.discoveryTopic(i)] = true
		t.want[c.stateTopic(i)] = false
	}
	return t
}

// onMsg runs on the client's reader goroutine.
func (t *readyTracker) onMsg(m msg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	isDisc, ok := t.want[m.Topic]
	if !ok || len(m.Payload) == 0 || t.at != (time.Time{}) {
		return
	}
	if isDisc {
		t.disc[m.Topic] = true
	} else {
		t.state[m.Topic] = true
	}
	if len(t.disc) == t.c.Doors && len(t.state) == t.c.Doors {
		t.at = m.At
		close(t.done)
	}
}

// session is one bridge process measured from outside.
type session struct {
	t      *target
	c      bridgeConfig
	w      *relayWatcher
	cl     *rawClient
	p      *bridgeProc
	fs     []string // fail-safe relay channels
	fsec   []string // fail-secure relay channels
	client string
}

// locked reports whether every door is locked: maglocks powered, strikes not.
func (s *session) locked(m map[string]bool) bool {
	return allLevel(s.fs, true)(m) && allLevel(s.fsec, false)(m)
}

// connect connects the measuring client, subscribes to the door states and
// publishes the alarm source's "clear" (retained, as a real one would).
func (s *session) connect() error {
	cl, err := dialMQTTUntil(s.t.brokerAddr(s.c), s.client, nil, time.Now().Add(10*time.Second))
	if err != nil {
		return err
	}
	if err := cl.subscribe(s.c.prefix() + "/+/state"); err != nil {
		cl.close()
		return err
	}
	if err := cl.publish(alarmTopic(), []byte("OFF"), 1, true); err != nil {
		cl.close()
		return err
	}
	s.cl = cl
	return nil
}

// start starts a bridge with config c and waits until every door is locked.
func (b *bench) start(t *target, c bridgeConfig, dir, client string) (*session, error) {
	cfgPath, err := writeConfig(c, dir)
	if err != nil {
		return nil, err
	}
	s := &session{t: t, c: c, fs: c.channels(true), fsec: c.channels(false), client: client}
	if s.w, err = watchRelays(c.StateFile, b.opts.Watch, nil); err != nil {
		return nil, err
	}
	if t.external() {
		if err := s.connect(); err != nil {
			s.close()
			return nil, err
		}
	}
	if s.p, err = startBridge(b.bin, cfgPath, filepath.Join(dir, "doorbridge.log")); err != nil {
		s.close()
		return nil, err
	}
	if !t.external() {
		if err := s.connect(); err != nil {
			s.close()
			return nil, err
		}
	}
	if _, err := s.w.waitFor(0, s.locked, 15*time.Second); err != nil {
		s.close()
		return nil, fmt.Errorf("doors did not lock after start: %w (log %s)", err, s.p.log)
	}
	if err := s.cl.waitQuiet(200*time.Millisecond, 10*time.Second); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// startFresh starts a bridge for n doors in a new scratch directory, with
// fresh ports (and again, up to twice, when a port picked as free was taken
// before the bridge could bind it). adjust may change the config.
func (b *bench) startFresh(t *target, n int, name, client string, adjust func(*bridgeConfig)) (*session, error) {
	for attempt := 1; ; attempt++ {
		dir, err := b.scratch(name)
		if err != nil {
			return nil, err
		}
		c, err := b.config(t, n, dir)
		if err != nil {
			return nil, err
		}
		if adjust != nil {
			adjust(&c)
		}
		s, err := b.start(t, c, dir, client)
		if err == nil {
			return s, nil
		}
		if attempt < 3 && portTaken(filepath.Join(dir, "doorbridge.log")) {
			b.logf("%s: a port picked as free was taken meanwhile; again with other ports", name)
			continue
		}
		return nil, err
	}
}

// close kills what is left of the session.
func (s *session) close() {
	if s.cl != nil {
		s.cl.close()
		s.cl = nil
	}
	if s.p != nil && s.p.running() {
		s.p.kill()
	}
	if s.w != nil {
		s.w.close()
		s.w = nil
	}
}

// stop stops the bridge with SIGTERM, as systemd would.
func (s *session) stop() error {
	err := s.p.stop(syscall.SIGTERM, 10*time.Second)
	s.close()
	return err
}

// steady runs one bridge through the idle window, the alarm and command
// rounds and (on mosquitto) the broker kill rounds.
func (b *bench) steady(t *target, n int, r *run) error {
	if !b.opts.want("idle") && !b.opts.want("alarm") && !b.opts.want("command") && !b.opts.want("commands") && !(t.external() && b.opts.want("kill")) {
		return nil
	}
	s, err := b.startFresh(t, n, fmt.Sprintf("steady-%s-%d", t.kind, n), "bench-steady", nil)
	if err != nil {
		return err
	}
	defer s.close()
	if b.opts.Console {
		defer openConsoleStream(s.c.HTTP)()
	}
	if b.opts.want("idle") {
		b.logf("%s, %d doors: idle CPU over %v", t.kind, n, b.opts.Idle)
		if err := b.idle(s, r); err != nil {
			return fmt.Errorf("idle: %w", err)
		}
	}
	if b.opts.want("alarm") {
		b.logf("%s, %d doors: alarm (%d rounds)", t.kind, n, b.opts.Rounds)
		if err := b.alarm(s, r); err != nil {
			return fmt.Errorf("alarm: %w", err)
		}
	}
	if b.opts.want("command") {
		b.logf("%s, %d doors: command round trip (%d rounds)", t.kind, n, b.opts.Rounds)
		if err := b.command(s, r); err != nil {
			return fmt.Errorf("command: %w", err)
		}
	}
	if b.opts.want("commands") {
		b.logf("%s, %d doors: command stream (%d commands, %v apart)", t.kind, n, b.opts.Commands, b.opts.CommandGap)
		if err := b.commandStream(s, r); err != nil {
			return fmt.Errorf("command stream: %w", err)
		}
	}
	if t.external() && b.opts.want("kill") {
		b.logf("%s, %d doors: broker SIGKILL (%d rounds)", t.kind, n, b.opts.Rounds)
		if err := b.kill(s, r); err != nil {
			return fmt.Errorf("broker kill: %w", err)
		}
	}
	if rss, err := s.p.vmHWM(); err == nil {
		r.add("rss_mb", rss)
	}
	return s.stop()
}

// idle measures the bridge's CPU share while nothing happens but its own
// timers and heartbeat.
func (b *bench) idle(s *session, r *run) error {
	time.Sleep(time.Second) // let the start-up garbage be collected before the window
	cpu0, err1 := s.p.cpuTime()
	sch0, err2 := s.p.schedTime()
	t0 := time.Now()
	time.Sleep(b.opts.Idle) // the idle window itself
	cpu1, err3 := s.p.cpuTime()
	sch1, err4 := s.p.schedTime()
	wall := time.Since(t0)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	r.add("cpu_idle_pct", 100*float64(cpu1-cpu0)/float64(wall))
	r.add("cpu_idle_pct_schedstat", 100*float64(sch1-sch0)/float64(wall))
	return nil
}

// alarm times the alarm message to the last fail-safe relay off.
func (b *bench) alarm(s *session, r *run) error {
	for round := range b.opts.Rounds {
		cur := s.w.current().Seq
		t0 := time.Now()
		if err := s.cl.publish(alarmTopic(), []byte("ON"), 1, true); err != nil {
			return err
		}
		v, err := s.w.waitFor(cur, allLevel(s.fs, false), 5*time.Second)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		r.add("alarm_release_ms", ms(v.At.Sub(t0)))
		if err := s.cl.publish(alarmTopic(), []byte("OFF"), 1, true); err != nil {
			return err
		}
		if _, err := s.w.waitFor(v.Seq, s.locked, 10*time.Second); err != nil {
			return fmt.Errorf("round %d: relock: %w", round, err)
		}
		if err := s.cl.waitQuiet(50*time.Millisecond, 10*time.Second); err != nil {
			return err
		}
		jitter(tickInterval)
	}
	return nil
}

// command times UNLOCK to the state UNLOCKED coming back, door after door.
func (b *bench) command(s *session, r *run) error {
	c := s.c
	for round := range b.opts.Rounds {
		i := round % c.Doors
		wu := s.cl.expect(topicIs(c.stateTopic(i), "UNLOCKED"))
		t0 := time.Now()
		if err := s.cl.publish(c.setTopic(i), []byte("UNLOCK"), 0, false); err != nil {
			return err
		}
		m, err := s.cl.wait(wu, 5*time.Second)
		if err != nil {
			return fmt.Errorf("round %d: UNLOCKED: %w", round, err)
		}
		r.add("command_roundtrip_ms", ms(m.At.Sub(t0)))
		wl := s.cl.expect(topicIs(c.stateTopic(i), "LOCKED"))
		if err := s.cl.publish(c.setTopic(i), []byte("LOCK"), 0, false); err != nil {
			return err
		}
		if _, err := s.cl.wait(wl, 5*time.Second); err != nil {
			return fmt.Errorf("round %d: LOCKED: %w", round, err)
		}
		if err := s.cl.waitQuiet(50*time.Millisecond, 10*time.Second); err != nil {
			return err
		}
		jitter(tickInterval)
	}
	return nil
}

// kill times SIGKILL of mosquitto to the last fail-safe relay off, then
// restarts the broker and waits for the doors to lock again.
func (b *bench) kill(s *session, r *run) error {
	for round := range b.opts.Rounds {
		cur := s.w.current().Seq
		t0 := time.Now() // the moment SIGKILL is sent
		s.t.mosq.Kill()
		v, err := s.w.waitFor(cur, allLevel(s.fs, false), 5*time.Second)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		r.add("broker_kill_release_ms", ms(v.At.Sub(t0)))
		s.cl.close()
		s.cl = nil
		if err := s.t.mosq.Restart(); err != nil {
			return err
		}
		if err := s.connect(); err != nil {
			return err
		}
		if _, err := s.w.waitFor(v.Seq, s.locked, 20*time.Second); err != nil {
			return fmt.Errorf("round %d: relock after restart: %w", round, err)
		}
		if err := s.cl.waitQuiet(100*time.Millisecond, 10*time.Second); err != nil {
			return err
		}
		jitter(tickInterval)
	}
	return nil
}

// silentLink runs a bridge through a proxy and makes the proxy silent: only
// the bridge's heartbeat round trip can notice.
func (b *bench) silentLink(t *target, n int, r *run) error {
	px, err := testbroker.StartProxy(t.mosq.Addr("mqtt"))
	if err != nil {
		return err
	}
	defer px.Close()
	s, err := b.startFresh(t, n, fmt.Sprintf("silent-%d", n), "bench-silent", func(c *bridgeConfig) { c.MQTTURL = px.URL() })
	if err != nil {
		return err
	}
	defer s.close()
	for round := range b.opts.Rounds {
		// A random phase against the heartbeat: detection takes between
		// heartbeat_timeout - heartbeat_interval and heartbeat_timeout.
		jitter(b.opts.HeartbeatInterval)
		cur := s.w.current().Seq
		px.Pause()
		t0 := time.Now() // nothing crosses from here on
		v, err := s.w.waitFor(cur, allLevel(s.fs, false), b.opts.HeartbeatTimeout+5*time.Second)
		px.Resume()
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		r.add("silent_link_release_ms", ms(v.At.Sub(t0)))
		if _, err := s.w.waitFor(v.Seq, s.locked, 20*time.Second); err != nil {
			return fmt.Errorf("round %d: relock after the link came back: %w (log %s)", round, err, s.p.log)
		}
	}
	return s.stop()
}

// baseline times a message between two raw clients through the same broker:
// the floor under every MQTT figure on this machine.
func (b *bench) baseline(t *target, r *run) error {
	if !t.external() {
		return nil
	}
	pub, err := dialMQTT(t.mosq.Addr("mqtt"), "bench-base-pub", nil)
	if err != nil {
		return err
	}
	defer pub.close()
	sub, err := dialMQTT(t.mosq.Addr("mqtt"), "bench-base-sub", nil)
	if err != nil {
		return err
	}
	defer sub.close()
	if err := sub.subscribe("bench/baseline"); err != nil {
		return err
	}
	for round := range max(b.opts.Rounds, 20) {
		p := fmt.Sprint(round)
		w := sub.expect(topicIs("bench/baseline", p))
		t0 := time.Now()
		if err := pub.publish("bench/baseline", []byte(p), 0, false); err != nil {
			return err
		}
		m, err := sub.wait(w, 5*time.Second)
		if err != nil {
			return err
		}
		r.add("mqtt_hop_ms", ms(m.At.Sub(t0)))
		jitter(10 * time.Millisecond)
	}
	return nil
}

// tickInterval is the bridge's timer tick (bridge.Options.TickInterval's default).
const tickInterval = 100 * time.Millisecond

// jitter waits a random time below d, so that rounds do not keep the same
// phase against the bridge's timers.
func jitter(d time.Duration) {
	time.Sleep(rand.N(d))
}
