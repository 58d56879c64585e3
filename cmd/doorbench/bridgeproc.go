package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildBridge builds the doorbridge binary from the tree the way releases
// and the Docker image are built (static, CGO_ENABLED=0, -trimpath, -s -w;
// scripts/build-release.sh): the figures are for the binary users run. A
// default cgo build starts ~5 ms slower (dynamic loader, libc).
func buildBridge(dir string) (string, error) { return buildBridgeFlags(dir, false) }

// buildBridgeFlags builds doorbridge; with race, a -race build (which
// needs cgo) instead of the release build.
func buildBridgeFlags(dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "doorbridge")
	args := []string{"build", "-o", bin}
	env := os.Environ()
	if race {
		args = append(args, "-race")
	} else {
		args = append(args, "-trimpath", "-ldflags", "-s -w")
		env = append(env, "CGO_ENABLED=0")
	}
	cmd := exec.Command("go", append(args, "github.com/doorbridge/doorbridge/cmd/doorbridge")...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build doorbridge: %v\n%s", err, out)
	}
	return bin, nil
}

// bridgeConfig describes the config doorbench writes for one bridge.
type bridgeConfig struct {
	ID        string
	Doors     int
	MQTTURL   string // "" starts the embedded broker on Embedded
	Embedded  string
	HTTP      string // "" turns the HTTP listener off
	StateFile string
	StateDir  string // bridge.state_dir ("" the default: the user's, so always set it)

	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	RelockDelay       time.Duration
	AlarmLatch        bool
	PowerTopic        string // "" no power source; else an MQTT power source on this topic
	FaultsFile        string // the sim driver's faults_file ("" none)
	Console           bool   // http.console: read_only
}

// door ids, channels and fail modes: even doors are fail-safe (maglocks),
// odd doors fail-secure (strikes).
func doorID(i int) string             { return fmt.Sprintf("d%03d", i) }
func doorChannel(i int) string        { return strconv.Itoa(i) }
func doorFailSafe(i int) bool         { return i%2 == 0 }
func alarmTopic() string              { return "db/alarm" }
func (c bridgeConfig) prefix() string { return "db/" + c.ID }

func (c bridgeConfig) stateTopic(i int) string { return c.prefix() + "/" + doorID(i) + "/state" }
func (c bridgeConfig) setTopic(i int) string   { return c.prefix() + "/" + doorID(i) + "/set" }

// discoveryTopic is a door's Home Assistant device-discovery topic.
func (c bridgeConfig) discoveryTopic(i int) string {
	return "homeassistant/device/doorbridge_" + c.ID + "_" + doorID(i) + "/config"
}

// channels returns the relay channels of the fail-safe (or fail-secure) doors.
func (c bridgeConfig) channels(failSafe bool) []string {
	var chans []string
	for i := range c.Doors {
		if doorFailSafe(i) == failSafe {
			chans = append(chans, doorChannel(i))
		}
	}
	return chans
}

func (c bridgeConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bridge: {id: %s, name: doorbench, state_dir: %q}\n", c.ID, c.StateDir)
	fmt.Fprintf(&b, "mqtt: {url: %q, base_topic: db}\n", c.MQTTURL)
	fmt.Fprintf(&b, "embedded_broker: {listen: %q}\n", c.Embedded)
	if c.Console {
		fmt.Fprintf(&b, "http: {listen: %q, console: read_only}\n", c.HTTP)
	} else {
		fmt.Fprintf(&b, "http: {listen: %q}\n", c.HTTP)
	}
	fmt.Fprintf(&b, "watchdog: {heartbeat_interval: %s, heartbeat_timeout: %s, relock_delay: %s, alarm_latch: %v}\n",
		c.HeartbeatInterval, c.HeartbeatTimeout, c.RelockDelay, c.AlarmLatch)
	fmt.Fprintf(&b, "alarms: [{topic: %s, payload_on: \"ON\", payload_off: \"OFF\"}]\n", alarmTopic())
	if c.PowerTopic != "" {
		fmt.Fprintf(&b, "power: [{type: mqtt, name: mains, topic: %s, payload_ok: \"ON\", payload_lost: \"OFF\", timeout: 5s}]\n", c.PowerTopic)
	}
	if c.FaultsFile != "" {
		fmt.Fprintf(&b, "drivers: [{id: sim, type: sim, state_file: %q, faults_file: %q}]\n", c.StateFile, c.FaultsFile)
	} else {
		fmt.Fprintf(&b, "drivers: [{id: sim, type: sim, state_file: %q}]\n", c.StateFile)
	}
	b.WriteString("doors:\n")
	for i := range c.Doors {
		mode := "fail_secure"
		if doorFailSafe(i) {
			mode = "fail_safe"
		}
		fmt.Fprintf(&b, "  - {id: %s, name: Door %d, fail_mode: %s, relay: {driver: sim, channel: %q}, unlock_time: 2s}\n",
			doorID(i), i, mode, doorChannel(i))
	}
	return b.String()
}

// bridgeLogLevel is the bridge's -log-level (doorbench --log-level).
var bridgeLogLevel = "info"

// bridgeProc is one running doorbridge process.
type bridgeProc struct {
	cmd     *exec.Cmd
	started time.Time // just before fork/exec
	exited  chan struct{}
	state   *os.ProcessState
	log     string
}

// startBridge runs `doorbridge run -c cfgPath`, its output appended to logPath.
func startBridge(bin, cfgPath, logPath string) (*bridgeProc, error) {
	return startBridgeEnv(bin, cfgPath, logPath, nil)
}

// startBridgeEnv is startBridge with env added to the environment.
func startBridgeEnv(bin, cfgPath, logPath string, env []string) (*bridgeProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "-c", cfgPath, "-log-level", bridgeLogLevel)
	cmd.Stdout, cmd.Stderr = logf, logf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &bridgeProc{cmd: cmd, exited: make(chan struct{}), log: logPath}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	return p, nil
}

func (p *bridgeProc) pid() int { return p.cmd.Process.Pid }

func (p *bridgeProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to timeout for the exit; then it kills.
func (p *bridgeProc) stop(sig syscall.Signal, timeout time.Duration) error {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		if !p.state.Success() {
			return fmt.Errorf("doorbridge exited with %v after %v (log %s)", p.state, sig, p.log)
		}
		return nil
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("doorbridge did not exit within %v of %v (log %s)", timeout, sig, p.log)
	}
}

// kill SIGKILLs the process and waits for it.
func (p *bridgeProc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// vmHWM is the peak resident set size in MiB, from /proc/<pid>/status.
func (p *bridgeProc) vmHWM() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := strings.Fields(string(rest))
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.pid())
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuTime is utime+stime of the process, from /proc/<pid>/stat (10 ms steps).
func (p *bridgeProc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", p.pid())
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ppid ... utime is field 14, stime 15 (1-based).
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", p.pid())
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", p.pid())
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// schedTime is the CPU time of every thread of the process in nanoseconds,
// from /proc/<pid>/task/*/schedstat: finer than cpuTime's 10 ms ticks.
func (p *bridgeProc) schedTime() (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid()))
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", p.pid(), t.Name()))
		if err != nil {
			continue // the thread is gone
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += ns
	}
	return time.Duration(sum), nil
}
