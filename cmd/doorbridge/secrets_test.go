package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// quickCommand runs the race-built binary without the race runtime's one
// second pause at exit.
func quickCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	return cmd
}

// Known secrets, each of which must never appear in any output.
const (
	secretInline = "S3cret-inline-pw"
	secretFile   = "S3cret-file-pw"
	secretHA     = "S3cret-ha-pw"
	secretGuess  = "S3cret-guess-pw"
	secretBad    = "S3cret-in-a-bad-config"
)

// secretOutputs gathers what a bridge shows the world: check-config's
// output, the debug log of a run, and every HTTP API answer.
type secretOutputs struct {
	t    *testing.T
	what map[string][]byte
}

func (o *secretOutputs) add(name string, b []byte) { o.what[name] = append(o.what[name], b...) }

func (o *secretOutputs) get(url string) {
	o.t.Helper()
	// Bounded: a bridge that stopped answering fails the test, not the run.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	o.add(url, b)
}

func (o *secretOutputs) checkConfig(path string) {
	o.t.Helper()
	cmd := quickCommand("check-config", "-c", path)
	stop := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer stop.Stop()
	out, _ := cmd.CombinedOutput()
	o.add("check-config "+filepath.Base(path), out)
}

// grep fails the test for every output that holds one of the secrets.
func (o *secretOutputs) grep(secrets ...string) {
	o.t.Helper()
	for name, out := range o.what {
		if len(out) == 0 {
			o.t.Errorf("%s: no output at all (the test would prove nothing)", name)
		}
		for _, s := range secrets {
			if i := bytes.Index(out, []byte(s)); i >= 0 {
				o.t.Errorf("%s shows the secret %q: ...%s...", name, s, out[max(0, i-80):min(len(out), i+len(s)+20)])
			}
		}
	}
}

// Secrets (mqtt.password, mqtt.password_file, the embedded broker's users'
// passwords, a wrong password an intruder tried) never appear in
// check-config's output, in the log (at debug level), or in the HTTP API.
func TestSecretsStayHidden(t *testing.T) {
	o := &secretOutputs{t: t, what: map[string][]byte{}}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	doors := `watchdog: {heartbeat_interval: 100ms, heartbeat_timeout: 500ms, relock_delay: 200ms}
drivers:
  - {id: sim, type: sim, state_file: %q}
doors:
  - {id: fs, name: Fire exit, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, egress: true}
`
	run := func(name, cfgPath, brokerAddr, httpAddr string, clients func()) {
		t.Helper()
		o.checkConfig(cfgPath)
		cmd := quickCommand("run", "-log-level", "debug", "-c", cfgPath)
		cmd.Env = append(cmd.Env, "STATE_DIRECTORY="+filepath.Join(filepath.Dir(cfgPath), "state-"+name))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{cmd: cmd, out: &out, exited: make(chan error, 1)}
		go func() { p.exited <- cmd.Wait() }()
		t.Cleanup(func() { p.kill(t) })
		for _, addr := range []string{httpAddr, brokerAddr} {
			testbroker.Eventually(t, wait, func() bool {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					c.Close()
				}
				return err == nil
			}, "listening on %s", addr)
		}
		clients()
		for _, path := range []string{"/api/v1/doors", "/api/v1/state", "/metrics", "/readyz"} {
			o.get("http://" + httpAddr + path)
		}
		p.stop(t, syscall.SIGTERM)
		o.add(name+" log", out.Bytes())
	}

	// An external broker, the password inline in the config.
	br := testbroker.Start(t)
	httpA := testbroker.FreeAddr(t)
	cfgA := write("inline.yaml", fmt.Sprintf("bridge: {id: a}\nmqtt: {url: %q, username: doorbridge, password: %q}\nhttp: {listen: %q}\n"+doors,
		br.URL(), secretInline, httpA, filepath.Join(dir, "a.json")))
	run("inline", cfgA, br.Addr(), httpA, func() {
		w := testbroker.Connect(t, br.URL(), "watcher-a")
		w.WaitPayload("doorbridge/a/availability", "online", wait)
	})

	// The embedded broker with users: the bridge's password in a file, Home
	// Assistant's as a bcrypt hash; an intruder guesses.
	hash, err := bcrypt.GenerateFromPassword([]byte(secretHA), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	brokerB, httpB := testbroker.FreeAddr(t), testbroker.FreeAddr(t)
	pwFile := write("bridge-password", secretFile+"\n")
	cfgB := write("embedded.yaml", fmt.Sprintf(`bridge: {id: b}
mqtt: {username: doorbridge, password_file: %q}
embedded_broker:
  listen: %q
  users:
    - {username: doorbridge, password_file: %q}
    - {username: homeassistant, password_hash: %q}
  acl:
    - {username: homeassistant, publish: ["doorbridge/+/+/set", "doorbridge/alarm"], subscribe: ["doorbridge/#"]}
http: {listen: %q}
`+doors, pwFile, brokerB, pwFile, hash, httpB, filepath.Join(dir, "b.json")))
	run("embedded", cfgB, brokerB, httpB, func() {
		ha := testbroker.ConnectWith(t, "tcp://"+brokerB, "ha", testbroker.ClientOptions{Username: "homeassistant", Password: secretHA})
		ha.Publish("doorbridge/alarm", "OFF", true)
		ha.WaitPayload("doorbridge/b/fs/state", "LOCKED", wait)
		if err := testbroker.TryConnect("tcp://"+brokerB, "intruder", testbroker.ClientOptions{Username: "homeassistant", Password: secretGuess}); err == nil {
			t.Error("the intruder's guess was accepted")
		}
	})
	if !strings.Contains(string(o.what["embedded log"]), "embedded broker refused a login") {
		t.Error("the refused login was not logged (the grep would prove nothing about it)")
	}

	// Invalid configs that hold secrets: the errors name the key, not the value.
	o.checkConfig(write("bad-type.yaml", fmt.Sprintf("mqtt: {url: tcp://h:1883, password: {x: %q}}\n"+doors, secretBad, "x.json")))
	o.checkConfig(write("bad-url.yaml", fmt.Sprintf("mqtt: {url: \"tcp://doorbridge:%s@h:1883\"}\n"+doors, secretBad, "x.json")))
	o.checkConfig(write("bad-url-parse.yaml", fmt.Sprintf("mqtt: {url: \"tcp://doorbridge:%s@h:port\"}\n"+doors, secretBad, "x.json")))

	o.grep(secretInline, secretFile, secretHA, secretGuess, secretBad)
}
