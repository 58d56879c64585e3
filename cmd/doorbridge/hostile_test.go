package main

// The hostile-client suite (issue 12): every attack of the issue, run
// against the bridge on its embedded broker (with users) and on mosquitto
// running the shipped configs/mosquitto files, by a LAN attacker, a broker
// user with few rights, a misbehaving integration (Home Assistant's login)
// and a holder of the bridge's own password. After each attack it asserts:
// no relay changed (the sim driver's state file and the audit trail), no
// hazard was raised, the resident memory of the bridge (and of mosquitto)
// grew by less than the bound below, and the audit trail still holds the
// safety records made before the attacks.
//
//	DOORBRIDGE_HOSTILE=1     the short form (.ci/run): floods of 2 s
//	DOORBRIDGE_HOSTILE=full  floods of 10 s, as the reproduction
//
// Attacks whose fix is on another engineer's branch are marked with
// pendingFix: skipped unless DOORBRIDGE_HOSTILE_PENDING=1, and to be
// un-skipped once that branch is merged.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Resident memory may grow by at most this much during any attack, for the
// bridge (its embedded broker included) and for mosquitto. The bridge runs
// in ~30 MB (built with -race here: ~60 MB); on 43e9a8a, 8 sockets sending
// 5 bytes each took it up by 250 MB.
const (
	bridgeRSSGrowth    = 64 << 20
	mosquittoRSSGrowth = 32 << 20
)

// The door code shared by both doors (bridge.code_hash), and max_failures.
const (
	hostileCode        = "2468"
	hostileMaxFailures = 3
)

// hostileFlood is how long the floods last.
func hostileFlood(t *testing.T) time.Duration {
	switch os.Getenv("DOORBRIDGE_HOSTILE") {
	case "":
		t.Skip("the hostile-client suite runs with DOORBRIDGE_HOSTILE=1 (short) or =full")
	case "full":
		return 10 * time.Second
	}
	return 2 * time.Second
}

// pendingFix skips an attack whose fix is on another branch until that
// branch is merged (DOORBRIDGE_HOSTILE_PENDING=1 runs it anyway).
func pendingFix(t *testing.T, item, branch string) {
	t.Helper()
	if os.Getenv("DOORBRIDGE_HOSTILE_PENDING") == "" {
		t.Skipf("issue 12 item %s: fixed on branch %s; un-skip (remove this pendingFix call) once it is merged", item, branch)
	}
}

// hostileSite is one bridge, its broker and the clients that watch them.
type hostileSite struct {
	t         *testing.T
	name      string
	url, addr string // the plain MQTT listener
	bridge    *proc
	mosqPID   int
	pw        map[string]string
	state     string // the sim driver's relays
	auditFile string
	httpAddr  string
	watcher   *testbroker.Client

	rssMu    sync.Mutex
	rssBase  map[int]int64
	rssPeak  map[int]int64
	safetyAt []uint64 // audit sequence numbers of the safety records made before the attacks
}

var hostileUsers = map[string]string{
	"doorbridge": "bridge-pw-1", "homeassistant": "ha-pw-2", "doorbridge-cli": "cli-pw-3",
	"watcher": "watch-pw-4", "guest": "guest-pw-5",
}

// hostileConfig is the bridge's config: both doors need the shared code,
// the audit trail is small (64 KB, 2 old files) so that a flood could wipe
// it quickly, and /metrics is served.
func hostileConfig(t *testing.T, dir, mqtt, embedded string) (cfgPath, state, auditFile, httpAddr string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(hostileCode), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	state, auditFile, httpAddr = filepath.Join(dir, "relays.json"), filepath.Join(dir, "audit.jsonl"), testbroker.FreeAddr(t)
	cfg := fmt.Sprintf(`bridge: {id: hz, code_hash: %q}
codes: {max_failures: %d, lockout: 1h}
%s
%s
http: {listen: %q}
audit: {file: %q, max_size: 64KB, max_files: 2}
watchdog: {relock_delay: 200ms}
drivers:
  - {id: sim, type: sim, state_file: %q}
doors:
  - {id: fs, name: Fire exit, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, egress: true}
  - {id: fsec, name: Store, fail_mode: fail_secure, relay: {driver: sim, channel: "1"}}
`, hash, hostileMaxFailures, mqtt, embedded, httpAddr, auditFile, state)
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, state, auditFile, httpAddr
}

func hostileSecret(t *testing.T, dir, name, pw string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// embeddedSite runs the bridge on its embedded broker with users and an
// acl like the shipped mosquitto one. The watcher reads doorbridge/# only:
// the embedded broker's queue for it lives in the bridge's process, and
// 200 kB discovery junk at full rate to a watcher on "#" (a slow
// subscriber, its own attack above: up to 128 queued messages) would add
// up to 25 MB, and its garbage, to the bridge's memory during the flood.
func embeddedSite(t *testing.T) *hostileSite {
	dir := t.TempDir()
	listen := testbroker.FreeAddr(t)
	pwFile := hostileSecret(t, dir, "bridge-password", hostileUsers["doorbridge"])
	hash := func(u string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(hostileUsers[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	embedded := fmt.Sprintf(`embedded_broker:
  listen: %q
  users:
    - {username: doorbridge, password_file: %q}
    - {username: homeassistant, password_hash: %q}
    - {username: doorbridge-cli, password_hash: %q}
    - {username: watcher, password_hash: %q}
    - {username: guest, password_hash: %q}
  acl:
    - {username: homeassistant, publish: ["doorbridge/+/+/set", "doorbridge/+/alarm/reset", "doorbridge/+/republish", "doorbridge/alarm", "homeassistant/#"], subscribe: ["doorbridge/#", "homeassistant/#"]}
    - {username: doorbridge-cli, publish: ["doorbridge/alarm", "doorbridge/+/alarm/reset", "doorbridge/+/+/set"], subscribe: ["doorbridge/#"]}
    - {username: watcher, publish: ["testbroker/#"], subscribe: ["doorbridge/#", "testbroker/#"]}
    - {username: guest, publish: [], subscribe: ["doorbridge/+/+/state"]}`,
		listen, pwFile, hash("homeassistant"), hash("doorbridge-cli"), hash("watcher"), hash("guest"))
	mqtt := fmt.Sprintf("mqtt: {url: \"\", username: doorbridge, password_file: %q}", pwFile)
	s := &hostileSite{t: t, name: "embedded", url: "tcp://" + listen, addr: listen, pw: hostileUsers}
	cfgPath := ""
	cfgPath, s.state, s.auditFile, s.httpAddr = hostileConfig(t, dir, mqtt, embedded)
	s.start(cfgPath)
	return s
}

// mosquittoSite runs the bridge on mosquitto with the shipped
// configs/mosquitto files (and a test-only guest user that may publish
// nothing).
func mosquittoSite(t *testing.T) *hostileSite {
	dir := t.TempDir()
	m, _ := exampleMosquitto(t, hostileUsers, "user guest\ntopic read doorbridge/+/+/state\n")
	pwFile := hostileSecret(t, dir, "bridge-password", hostileUsers["doorbridge"])
	mqtt := fmt.Sprintf("mqtt: {url: tcp://%s, username: doorbridge, password_file: %q}", m.Addr("mqtt"), pwFile)
	s := &hostileSite{t: t, name: "mosquitto", url: "tcp://" + m.Addr("mqtt"), addr: m.Addr("mqtt"), pw: hostileUsers, mosqPID: m.PID()}
	cfgPath := ""
	cfgPath, s.state, s.auditFile, s.httpAddr = hostileConfig(t, dir, mqtt, "")
	s.start(cfgPath)
	return s
}

// start starts the bridge, clears the alarm and makes the safety records
// the attacks must not push out of the audit trail: an alarm that
// releases the maglock, its latch, and the reset.
func (s *hostileSite) start(cfgPath string) {
	t := s.t
	s.bridge = startBridge(t, cfgPath)
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect(s.url, "probe", s.login("watcher")) == nil
	}, "broker up on %s", s.addr)
	s.watcher = testbroker.ConnectWith(t, s.url, "watcher", s.login("watcher"))
	s.watcher.WaitPayload("doorbridge/hz/availability", "online", wait)
	s.publish("homeassistant", "doorbridge/alarm", "ON", true)
	s.watcher.WaitPayload("doorbridge/hz/alarm/latched", "ON", wait)
	s.clearAlarm()
	s.watcher.WaitPayload("doorbridge/hz/alarm/latched", "OFF", wait)
	s.watcher.WaitPayload("doorbridge/hz/fs/state", "LOCKED", wait)
	s.waitRelays(map[string]bool{"0": true, "1": false})
	testbroker.Eventually(t, wait, func() bool { return len(s.auditSince(0, isSafetyRecord)) >= 4 }, "the alarm's safety records in the audit trail")
	testbroker.Eventually(t, wait, func() bool {
		return s.relockedAfter(0, func(e audit.Event) bool { return e.Kind == "latch" && e.Outcome == "OFF" })
	}, "the relock after the reset in the audit trail")
	for _, e := range s.auditSince(0, isSafetyRecord) {
		s.safetyAt = append(s.safetyAt, e.Seq)
	}
	s.rssBase, s.rssPeak = map[int]int64{}, map[int]int64{}
	for _, pid := range s.pids() {
		s.rssBase[pid] = rss(t, pid)
	}
	t.Logf("%s: resident memory at start: %v (pid: bytes)", s.name, s.rssBase)
}

func (s *hostileSite) pids() []int {
	pids := []int{s.bridge.cmd.Process.Pid}
	if s.mosqPID != 0 {
		pids = append(pids, s.mosqPID)
	}
	return pids
}

func (s *hostileSite) login(user string) testbroker.ClientOptions {
	return testbroker.ClientOptions{Username: user, Password: s.pw[user]}
}

// publish publishes once as user, at QoS 1, and waits for the broker's
// acknowledgement.
func (s *hostileSite) publish(user, topic, payload string, retained bool) {
	s.t.Helper()
	c := s.client(user, user+"-"+strconv.Itoa(int(clientSeq.Add(1))))
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		s.t.Fatalf("%s publishing %s: %v", user, topic, tok.Error())
	}
}

var clientSeq atomic.Int64

// clearAlarm clears the alarm and resets the latch as Home Assistant, on
// one connection: MQTT keeps one publisher's order only. mochi acknowledges
// a QoS 1 PUBLISH before it hands it to the subscribers, so a RESET sent on
// a second connection could reach the bridge before the OFF, be refused
// (the alarm still active) and leave the latch on.
func (s *hostileSite) clearAlarm() {
	s.t.Helper()
	c := s.client("homeassistant", "homeassistant-"+strconv.Itoa(int(clientSeq.Add(1))))
	defer c.Disconnect(100)
	for _, p := range [][2]string{{"doorbridge/alarm", "OFF"}, {"doorbridge/hz/alarm/reset", "RESET"}} {
		retained := p[1] == "OFF" // the alarm's value is retained, a reset never
		if tok := c.Publish(p[0], 1, retained, p[1]); !tok.WaitTimeout(wait) || tok.Error() != nil {
			s.t.Fatalf("homeassistant publishing %s: %v", p[0], tok.Error())
		}
	}
}

// client is a plain paho client logged in as user (no auto reconnect).
func (s *hostileSite) client(user, id string) paho.Client {
	s.t.Helper()
	c, err := s.dial(user, id)
	if err != nil {
		s.t.Fatalf("%s: connect as %s: %v", s.name, user, err)
	}
	return c
}

func (s *hostileSite) dial(user, id string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(s.url).SetClientID(id).SetUsername(user).
		SetPassword(s.pw[user]).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(true).
		SetConnectTimeout(wait).SetWriteTimeout(wait))
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, fmt.Errorf("no CONNACK within %v", wait)
	}
	return c, tok.Error()
}

func (s *hostileSite) waitRelays(want map[string]bool) {
	s.t.Helper()
	testbroker.Eventually(s.t, wait, func() bool {
		r := readRelays(s.t, s.state)
		return r["0"] == want["0"] && r["1"] == want["1"]
	}, "relays %v", want)
}

// attack runs fn and then checks every invariant: the relays as before, no
// relay change nor hazard in the audit trail or on the hazards topic, the
// bridge still online, memory within its bound, the safety records kept.
func (s *hostileSite) attack(t *testing.T, fn func(t *testing.T)) {
	before := readRelays(t, s.state)
	seq := s.lastSeq()
	mark := s.watcher.Mark()
	stop := s.sampleRSS()
	fn(t)
	s.publish("homeassistant", "doorbridge/hz/republish", "PRESS", false)
	s.watcher.Sync(wait)
	stop()
	s.checkInvariants(t, before, seq, mark)
}

func (s *hostileSite) checkInvariants(t *testing.T, before map[string]bool, seq uint64, mark int) {
	t.Helper()
	if after := readRelays(t, s.state); after["0"] != before["0"] || after["1"] != before["1"] {
		t.Errorf("%s: relays %v after the attack, %v before", s.name, after, before)
	}
	for _, e := range s.auditSince(seq, func(e audit.Event) bool {
		return e.Kind == "relay" || (e.Kind == "hazard" && e.Outcome == "raised")
	}) {
		t.Errorf("%s: the attack caused an audit record: %+v", s.name, e)
	}
	for _, m := range s.watcher.Since(mark) {
		switch {
		case m.Topic == "doorbridge/hz/hazards" && string(m.Payload) != "[]":
			t.Errorf("%s: a hazard was raised: %s", s.name, m)
		case m.Topic == "doorbridge/hz/availability" && string(m.Payload) != "online":
			t.Errorf("%s: the bridge went %s", s.name, m.Payload)
		}
	}
	s.checkRSS(t)
	s.checkSafetyRecords(t)
}

// sampleRSS records each process's peak resident memory until stop.
func (s *hostileSite) sampleRSS() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, pid := range s.pids() {
				if r := rss(nil, pid); r > 0 {
					s.rssMu.Lock()
					s.rssPeak[pid] = max(s.rssPeak[pid], r)
					s.rssMu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (s *hostileSite) checkRSS(t *testing.T) {
	t.Helper()
	s.rssMu.Lock()
	defer s.rssMu.Unlock()
	for pid, peak := range s.rssPeak {
		bound, what := int64(bridgeRSSGrowth), "the bridge"
		if pid == s.mosqPID {
			bound, what = mosquittoRSSGrowth, "mosquitto"
		}
		t.Logf("%s: %s: resident %d MB at start, peak %d MB", s.name, what, s.rssBase[pid]>>20, peak>>20)
		if peak-s.rssBase[pid] > bound {
			t.Errorf("%s: %s grew by %d MB (from %d MB), more than %d MB", s.name, what, (peak-s.rssBase[pid])>>20, s.rssBase[pid]>>20, bound>>20)
		}
	}
}

// rss is pid's resident memory in bytes (VmRSS), or 0 once it is gone.
func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		if t != nil {
			t.Fatalf("reading pid %d's memory: %v", pid, err)
		}
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// isSafetyRecord: alarms, hazards, the latch, resets, lockdown, relay
// changes and code lockouts (issue 12 item 6's list).
func isSafetyRecord(e audit.Event) bool {
	switch e.Kind {
	case "alarm", "hazard", "latch", "reset", "lockdown", "relay", "lockout":
		return true
	}
	return strings.Contains(e.Outcome, "lockout") || strings.Contains(e.Detail, "lockout")
}

// auditSince reads every audit file and returns the events after seq that
// match keep.
func (s *hostileSite) auditSince(seq uint64, keep func(audit.Event) bool) []audit.Event {
	s.t.Helper()
	files, err := audit.Files(s.auditFile)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []audit.Event
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue // rotated away in between
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e audit.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Seq > seq && keep(e) {
				out = append(out, e)
			}
		}
		fh.Close()
	}
	return out
}

func (s *hostileSite) lastSeq() uint64 {
	var last uint64
	for _, e := range s.auditSince(0, func(audit.Event) bool { return true }) {
		last = max(last, e.Seq)
	}
	return last
}

func (s *hostileSite) checkSafetyRecords(t *testing.T) {
	t.Helper()
	have := map[uint64]bool{}
	for _, e := range s.auditSince(0, isSafetyRecord) {
		have[e.Seq] = true
	}
	for _, seq := range s.safetyAt {
		if !have[seq] {
			t.Errorf("%s: the audit trail lost safety record %d (made before the attacks)", s.name, seq)
		}
	}
}

// rawDial opens a TCP connection to the site's plain listener.
func (s *hostileSite) rawDial(t *testing.T) net.Conn {
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHostileClients runs the suite against both brokers.
func TestHostileClients(t *testing.T) {
	flood := hostileFlood(t)
	for _, site := range []struct {
		name  string
		start func(*testing.T) *hostileSite
	}{{"embedded", embeddedSite}, {"mosquitto", mosquittoSite}} {
		t.Run(site.name, func(t *testing.T) {
			if site.name == "mosquitto" {
				testbroker.MosquittoBinary(t)
			}
			s := site.start(t)
			s.runAttacks(t, flood)
		})
	}
}

func (s *hostileSite) runAttacks(t *testing.T, flood time.Duration) {
	// Item 1: a user that may publish nothing sets a will on the alarm,
	// a door command and the reset, and drops its connection.
	t.Run("will", func(t *testing.T) {
		s.attack(t, func(t *testing.T) {
			for _, w := range []testbroker.Will{
				{Topic: "doorbridge/alarm", Payload: "ON", Retain: true},
				{Topic: "doorbridge/hz/fsec/set", Payload: `{"action": "UNLOCK", "code": "` + hostileCode + `"}`},
				{Topic: "doorbridge/hz/alarm/reset", Payload: "RESET"},
				{Topic: "doorbridge/hz/alarm/latched", Payload: "ON", Retain: true},
			} {
				if conn, _, err := testbroker.RawConnect(s.addr, "guest-will", s.login("guest"), &w); err == nil {
					testbroker.Drop(conn)
				}
			}
		})
	})
	// Item 2: Home Assistant's and the CLI's logins connect with the
	// bridge's client id, again and again.
	t.Run("client-id-takeover", func(t *testing.T) {
		s.attack(t, func(t *testing.T) {
			for range 10 {
				for _, u := range []string{"homeassistant", "doorbridge-cli", "guest"} {
					_ = testbroker.TryConnect(s.url, "doorbridge-hz", s.login(u))
				}
			}
		})
	})
	// Item 3: before any login, CONNECTs that declare 256 MB, ones that
	// declare 200 MB and send 4 MB of it, and 300 idle sockets.
	t.Run("memory-before-login", func(t *testing.T) {
		s.attack(t, func(t *testing.T) {
			s.memoryAttack(t)
		})
	})
	// The bridge's own password, stolen: see bridgePassword.
	t.Run("bridge-password", func(t *testing.T) { s.bridgePassword(t) })
	// Item 4: commands to 2000 made-up doors.
	t.Run("metric-labels", func(t *testing.T) {
		s.attack(t, func(t *testing.T) { s.metricLabels(t) })
	})
	// Item 5: a flood of junk commands and of large discovery configs.
	// On the embedded broker the flooders are held back to the bridge's
	// pace and junk commands shed before they fill the bridge's queue in
	// the broker (broker/flood.go).
	t.Run("flood", func(t *testing.T) { s.flood(t, flood) })
	// Item 6: 20,000 rejected commands must not push the safety records
	// out of the audit trail.
	t.Run("audit-wipe", func(t *testing.T) {
		s.attack(t, func(t *testing.T) { s.junkCommands(t, 20000) })
	})
	// Items 7 and 8: guessing the shared code on one door locks it out on
	// the other; the code is never echoed.
	t.Run("code-lockout-and-echo", func(t *testing.T) {
		s.attack(t, func(t *testing.T) { s.codeGuessing(t) })
	})
}

func (s *hostileSite) memoryAttack(t *testing.T) {
	var conns []net.Conn
	for range 8 {
		c := s.rawDial(t)
		_, _ = c.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}) // CONNECT of 268,435,455 bytes
		conns = append(conns, c)
	}
	chunk := make([]byte, 64<<10)
	for range 3 {
		c := s.rawDial(t)
		_ = c.SetWriteDeadline(time.Now().Add(wait))
		_, _ = c.Write([]byte{0x10, 0x80, 0x80, 0xe8, 0x5f}) // 200,015,872 bytes
		for range 64 {
			if _, err := c.Write(chunk); err != nil {
				break // cut by the broker: what should happen
			}
		}
		conns = append(conns, c)
	}
	for range 300 {
		conns = append(conns, s.rawDial(t))
	}
	// Home Assistant still gets in, while they are all open.
	if err := testbroker.TryConnect(s.url, "ha-during", s.login("homeassistant")); err != nil {
		t.Errorf("%s: Home Assistant could not log in during the attack: %v", s.name, err)
	}
	for _, c := range conns {
		c.Close()
	}
}

// metricLabels commands 2000 made-up doors and checks /metrics names none.
func (s *hostileSite) metricLabels(t *testing.T) {
	c := s.client("homeassistant", "ha-labels")
	defer c.Disconnect(100)
	s.sendRejected(t, c, 2000, func(i int) string { return fmt.Sprintf("doorbridge/hz/made-up-%d/set", i) }, func(int) string { return "UNLOCK" })
	c.Publish("doorbridge/hz/republish", 1, false, "PRESS").WaitTimeout(wait)
	s.watcher.Sync(wait)
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := strings.Count(string(body), "made-up-"); n > 0 {
		t.Errorf("%s: /metrics names made-up doors %d times (%d bytes)", s.name, n, len(body))
	}
}

// junkCommands sends n rejected commands (a wrong payload to a real
// door) at QoS 0.
func (s *hostileSite) junkCommands(t *testing.T, n int) {
	c := s.client("homeassistant", "ha-junk")
	defer c.Disconnect(100)
	s.sendRejected(t, c, n, func(int) string { return "doorbridge/hz/fsec/set" }, func(i int) string { return "JUNK-" + strconv.Itoa(i) })
	c.Publish("doorbridge/hz/republish", 1, false, "PRESS").WaitTimeout(wait)
}

// rejectBatch is how many commands sendRejected sends before it waits for
// the bridge: well below the embedded broker's queue for the bridge (128).
const rejectBatch = 100

// sendRejected sends n commands the bridge rejects, at QoS 0, in batches
// of rejectBatch, each once the bridge has counted the previous one as
// rejected (/metrics). What these attacks test is the number of rejected
// commands, not their rate: sent at once, on the embedded broker, they
// overflow the bridge's queue and delay its heartbeat into a broker
// hazard on a loaded machine, which is the flood attack's subject (issue
// 12 item 5, open on the embedded broker).
func (s *hostileSite) sendRejected(t *testing.T, c paho.Client, n int, topic, payload func(int) string) {
	t.Helper()
	base := s.rejectedCommands(t)
	for i := 0; i < n; {
		for end := min(n, i+rejectBatch); i < end; i++ {
			c.Publish(topic(i), 0, false, payload(i))
		}
		testbroker.Eventually(t, wait, func() bool { return s.rejectedCommands(t)-base >= float64(i) },
			"%s: the bridge counted %d commands rejected", s.name, i)
	}
}

// rejectedCommands is the bridge's count of rejected commands, every door's
// (doorbridge_commands_total, result "rejected").
func (s *hostileSite) rejectedCommands(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "doorbridge_commands_total{") && strings.Contains(line, `result="rejected"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("/metrics: %q: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

// flood: junk commands and large discovery configs on topics the bridge
// subscribes to, at full rate; an alarm in the middle still releases the
// maglock, and no hazard is raised.
func (s *hostileSite) flood(t *testing.T, d time.Duration) {
	mark := s.watcher.Mark()
	seq := s.lastSeq()
	stop := s.sampleRSS()
	done := make(chan struct{})
	var wg sync.WaitGroup
	big := strings.Repeat("x", 200<<10)
	for i, topic := range []string{"doorbridge/hz/fsec/set", "homeassistant/device/x/config"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.client("homeassistant", fmt.Sprintf("ha-flood-%d", i))
			defer c.Disconnect(100)
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				payload := "JUNK"
				if i == 1 {
					payload = big
				}
				if tok := c.Publish(topic, 0, false, payload); n%100 == 0 {
					tok.WaitTimeout(wait)
				}
			}
		}()
	}
	time.Sleep(d / 2) // the flood runs for d: half before the alarm
	sent := time.Now()
	s.publish("homeassistant", "doorbridge/alarm", "ON", true)
	testbroker.Eventually(t, 10*time.Second, func() bool { return !readRelays(t, s.state)["0"] }, "the maglock released by the alarm during the flood (NFPA 72: 10 s)")
	t.Logf("%s: the alarm released the maglock %v after it was published, during the flood", s.name, time.Since(sent).Round(time.Millisecond))
	time.Sleep(d / 2)
	close(done)
	wg.Wait()
	stop()
	// The alarm this test publishes raises the alarm hazard: any other is the flood's.
	for _, e := range s.auditSince(seq, func(e audit.Event) bool { return e.Kind == "hazard" && e.Outcome == "raised" && e.Hazard != "alarm" }) {
		t.Errorf("%s: the flood raised a hazard: %+v", s.name, e)
	}
	for _, m := range s.watcher.Since(mark) {
		if m.Topic == "doorbridge/hz/availability" && string(m.Payload) != "online" {
			t.Errorf("%s: the bridge went %s during the flood", s.name, m.Payload)
		}
	}
	s.clearAlarm()
	s.waitRelays(map[string]bool{"0": true, "1": false})
	s.settle(t, seq)
	s.checkRSS(t)
	s.checkSafetyRecords(t)
}

// settle waits until the maglock's relock after a release is the last
// relay record in the audit trail (written after the relay) and the watcher, which reads every junk
// message of a flood too and lags behind it, has caught up: the next
// attack must not count either as its own.
func (s *hostileSite) settle(t *testing.T, seq uint64) {
	t.Helper()
	testbroker.Eventually(t, wait, func() bool {
		var last *audit.Event
		for _, e := range s.auditSince(seq, func(e audit.Event) bool { return e.Kind == "relay" && e.Door == "fs" && e.Energized != nil }) {
			if last == nil || e.Seq > last.Seq {
				last = &e
			}
		}
		return last != nil && *last.Energized
	}, "%s: the maglock's relock in the audit trail", s.name)
	s.publish("homeassistant", "doorbridge/hz/republish", "PRESS", false)
	s.watcher.Sync(wait)
}

// codeGuessing: max_failures wrong codes on the front door, then the right
// code on the back door (which shares the code) must not unlock it; a code
// sent during the lockout never appears on any topic or in the log.
func (s *hostileSite) codeGuessing(t *testing.T) {
	// Each guess waits for the bridge's verdict: a guess sent while the
	// previous one is still checked is refused as busy and not counted
	// (on a loaded machine then no lockout, and the right code unlocks).
	for i := range hostileMaxFailures {
		mark := s.watcher.Mark()
		s.publish("homeassistant", "doorbridge/hz/fs/set", fmt.Sprintf(`{"action": "UNLOCK", "code": "%04d"}`, 1000+i), false)
		s.watcher.WaitForAfter(mark, "doorbridge/hz/fs/event", wait, func(m testbroker.Message) bool {
			return strings.Contains(string(m.Payload), `"rejected_code"`)
		})
	}
	s.publish("homeassistant", "doorbridge/hz/fsec/set", `{"action": "UNLOCK", "code": "`+hostileCode+`"}`, false)
	const echo = "echo-7Q3Z9" // no timestamp can hold it
	s.publish("homeassistant", "doorbridge/hz/fs/set", `{"action": "UNLOCK", "code": "`+echo+`"}`, false)
	s.publish("homeassistant", "doorbridge/hz/republish", "PRESS", false)
	s.watcher.Sync(wait)
	for _, m := range s.watcher.Since(0) {
		if strings.Contains(string(m.Payload), echo) && !strings.HasSuffix(m.Topic, "/set") {
			t.Errorf("%s: the code is echoed: %s", s.name, m)
		}
	}
}

// Item 9: without embedded_broker.users any account on the machine can
// command the doors; check-config says so in plain words (the bridge logs
// the same warning at every start). Not behind DOORBRIDGE_HOSTILE: quick.
func TestCheckConfigSaysEmbeddedBrokerHasNoLogin(t *testing.T) {
	cfgPath, _ := writeConfig(t, "", "127.0.0.1:1883", "")
	out, err := quickCommand("check-config", "-c", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	for _, want := range []string{"NO LOGIN: anyone on this machine can unlock the doors", config.NoLoginWarning} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check-config does not say %q:\n%s", want, out)
		}
	}
}

// bridgePassword: a holder of the bridge's own password logs in with the
// bridge's client id (on mosquitto every login as that user has it) and
// publishes a door command with the right code, lockdown, the alarm, a
// reset and a forged latch. None of them gets through: the strike never
// unlocks, no command reaches the bridge, no alarm or lockdown is raised.
// What it does do, and what the suite pins down as the known limit: its
// login takes the bridge's connection over, so the bridge loses its broker
// (a hazard) and releases the maglock until it is back.
func (s *hostileSite) bridgePassword(t *testing.T) {
	seq, mark := s.lastSeq(), s.watcher.Mark()
	// The bridge, reconnecting, may take its client id back before the
	// thief's CONNACK (an EOF): the thief tries again.
	var thief paho.Client
	testbroker.Eventually(t, 6*wait, func() bool {
		c, err := s.dial("doorbridge", "doorbridge-hz")
		thief = c
		return err == nil
	}, "%s: a login with the bridge's password and client id", s.name)
	for _, p := range []struct {
		topic, payload string
		retain         bool
	}{
		{"doorbridge/hz/fsec/set", `{"action": "UNLOCK", "code": "` + hostileCode + `"}`, false},
		{"doorbridge/hz/lockdown/set", "ON", false},
		{"doorbridge/alarm", "ON", true},
		{"doorbridge/hz/alarm/reset", "RESET", false},
	} {
		thief.Publish(p.topic, 0, p.retain, p.payload).WaitTimeout(wait)
	}
	thief.Disconnect(100)
	testbroker.Eventually(t, wait, func() bool {
		return len(s.auditSince(seq, func(e audit.Event) bool { return e.Kind == "hazard" && e.Hazard == "broker" && e.Outcome == "raised" })) > 0
	}, "%s: the bridge lost its connection to the login with its password (the known limit)", s.name)
	s.watcher.WaitForAfter(mark, "doorbridge/hz/availability", wait, func(m testbroker.Message) bool { return string(m.Payload) == "online" })
	// The thief's client and the bridge may take the client id from each
	// other a few times before the thief is gone, and paho backs off
	// between reconnects: the relock may take longer than one wait.
	// The relock's audit record follows its relay write: wait for the
	// record too, or it lands in the next attack's window and fails it.
	testbroker.Eventually(t, 6*wait, func() bool {
		r := readRelays(t, s.state)
		return r["0"] && !r["1"] && s.relockedAfter(seq, func(e audit.Event) bool {
			return e.Kind == "hazard" && e.Hazard == "broker" && e.Outcome == "raised"
		})
	}, "%s: the maglock relocked once the bridge has its connection back", s.name)
	s.settle(t, seq)
	for _, e := range s.auditSince(seq, func(audit.Event) bool { return true }) {
		switch {
		case e.Kind == "relay" && e.Door == "fsec" && e.Energized != nil && *e.Energized:
			t.Errorf("%s: the bridge's password unlocked the strike: %+v", s.name, e)
		case e.Kind == "command" || e.Kind == "lockdown" || e.Kind == "reset" || (e.Kind == "hazard" && e.Hazard == "alarm" && e.Outcome == "raised" && e.Origin != "mqtt:connected"):
			t.Errorf("%s: a publication with the bridge's password reached the bridge: %+v", s.name, e)
		}
	}
	for _, m := range s.watcher.Since(mark) {
		if m.Topic == "doorbridge/alarm" || m.Topic == "doorbridge/hz/fsec/set" || m.Topic == "doorbridge/hz/lockdown/set" {
			t.Errorf("%s: the broker passed on a publication made with the bridge's password: %s", s.name, m)
		}
	}
	s.checkRSS(t)
	s.checkSafetyRecords(t)
}

// relockedAfter reports whether the maglock's (fs) last relay record
// after seq says locked and follows a record that cause matches: the
// relock's record follows its relay write, and an attack that starts
// before it lands would count it as its own.
func (s *hostileSite) relockedAfter(seq uint64, cause func(audit.Event) bool) bool {
	var caused, locked uint64
	for _, e := range s.auditSince(seq, func(audit.Event) bool { return true }) {
		switch {
		case cause(e):
			caused = max(caused, e.Seq)
		case e.Kind == "relay" && e.Door == "fs":
			locked = map[bool]uint64{true: e.Seq}[e.Outcome == "locked"]
		}
	}
	return caused > 0 && locked > caused
}

// Issue 12 item 10: docker-compose publishes plain MQTT and the HTTP API
// (no login) on this host only, not on every interface.
func TestComposePublishesOnLoopbackOnly(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"1883:1883", "9180:9180"} {
		if !strings.Contains(string(text), `"127.0.0.1:`+port+`"`) {
			t.Errorf("docker-compose.yml does not publish %s on 127.0.0.1 only", port)
		}
		if strings.Contains(string(text), `- "`+port+`"`) {
			t.Errorf("docker-compose.yml publishes %s on every interface", port)
		}
	}
}
