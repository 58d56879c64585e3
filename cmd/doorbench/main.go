// Command doorbench measures the real doorbridge binary on loopback: how fast
// it releases doors on an alarm, a killed broker and a silent link, how fast
// it answers a command, how fast it starts, and what it costs in memory and
// idle CPU. It builds doorbridge from the tree, starts its own mosquitto
// (stock, as users run it, and optionally tuned with set_tcp_nodelay) and
// uses the bridge's embedded broker as another target, drives the sim
// driver and reads its state file, then prints a Markdown table and writes
// JSON.
//
//	scripts/bench.sh --doorbench     (the README's figures: stock mosquitto, tuned, embedded)
//	go run ./cmd/doorbench --doors 4 --only commands --json bench.json
//	go run ./cmd/doorbench soak --duration 60s --seed 1   (the chaos soak: see soak.go)
//
// Every figure is an upper bound taken from outside the bridge: the time of
// the cause (the publish, the SIGKILL, the proxy going silent, the exec) is
// taken just before it, and the time of the effect just after it was seen
// (the state file read, the MQTT message read off the socket).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "soak" {
		os.Exit(soakMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(benchMain(os.Args[1:], os.Stdout, os.Stderr))
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	f, ok := parseBenchFlags(args, stderr)
	if !ok {
		return 2
	}
	opts := f.opts

	dir, err := os.MkdirTemp(opts.StateDir, "doorbench-")
	if err != nil {
		fmt.Fprintf(stderr, "doorbench: %v\n", err)
		return 1
	}
	if f.keep {
		fmt.Fprintf(stderr, "doorbench: scratch directory %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{opts: opts, dir: dir, log: stderr, bin: f.bin}
	if b.bin == "" {
		if b.bin, err = buildBridge(dir); err != nil {
			fmt.Fprintf(stderr, "doorbench: %v\n", err)
			return 1
		}
	}
	rep := &report{Command: "doorbench " + strings.Join(args, " "), Environment: environment(opts), Method: method(opts)}
	for _, m := range rep.Method {
		fmt.Fprintf(stderr, "doorbench: %s\n", m)
	}
	failed := false
	for _, kind := range opts.Brokers {
		for _, n := range opts.Doors {
			r, err := b.measure(kind, n)
			if err != nil {
				fmt.Fprintf(stderr, "doorbench: %s, %d doors: %v\n", kind, n, err)
				failed = true
				continue
			}
			rep.Runs = append(rep.Runs, r)
		}
	}
	if opts.PahoClients > 0 && slices.ContainsFunc(opts.Brokers, isMosquitto) {
		b.logf("paho default keepalive: %d clients through a silent proxy (about 90 s)", opts.PahoClients)
		m, err := startMosquitto(opts.Mosquitto, dir, false)
		if err == nil {
			rep.PahoDefault, err = b.measurePahoDefault(m.Addr("mqtt"), opts.PahoClients)
			m.Kill()
		}
		if err != nil {
			fmt.Fprintf(stderr, "doorbench: paho default keepalive: %v\n", err)
			failed = true
		}
	}

	rep.Environment["loadavg_after"] = loadAvg()
	fmt.Fprintln(stdout)
	printTable(stdout, rep.Runs)
	fmt.Fprintln(stdout)
	if len(rep.Runs) > 0 {
		fmt.Fprintf(stdout, "silent_link_release_ms is measured with heartbeat_interval %v and heartbeat_timeout %v.\n", opts.HeartbeatInterval, opts.HeartbeatTimeout)
	}
	if pd := rep.PahoDefault; pd != nil {
		fmt.Fprintf(stdout, "Silent link with paho's default keepalive (no heartbeat of its own): measured %.1f / %.1f / %.1f s (p50 / p99 / max, %d clients); computed %.0f-%.0f s.\n",
			pd.Measured.P50/1000, pd.Measured.P99/1000, pd.Measured.Max/1000, pd.Measured.Count, pd.ComputedMinS, pd.ComputedMaxS)
	}
	fmt.Fprintf(stdout, "mosquitto: %s on loopback, started by doorbench: stock settings (mosquitto), or with set_tcp_nodelay true (mosquitto-nodelay).\n", rep.Environment["mosquitto"])
	fmt.Fprintf(stdout, "%s, %s cores, Go %s; load average %s before, %s after.\n", rep.Environment["cpu"], rep.Environment["cores"], rep.Environment["go"],
		rep.Environment["loadavg_before"], rep.Environment["loadavg_after"])
	if f.jsonOut != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(f.jsonOut, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "doorbench: %v\n", err)
			return 1
		}
	}
	if failed {
		return 1
	}
	return 0
}

// phases are what --only can pick.
var phases = []string{"startup", "idle", "alarm", "command", "commands", "kill", "silent"}

// defaultStateDir is /dev/shm when it exists: the sim driver replaces its
// state file on every relay change, and on a journaling file system that
// costs more than the bridge's whole reaction (a real relay is one ioctl).
func defaultStateDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func environment(opts benchOptions) map[string]string {
	env := map[string]string{
		"go":        runtime.Version(),
		"os":        runtime.GOOS + "/" + runtime.GOARCH,
		"cores":     strconv.Itoa(runtime.NumCPU()),
		"mosquitto": mosquittoVersion(opts.Mosquitto),
		"date":      time.Now().UTC().Format(time.RFC3339),
	}
	env["loadavg_before"] = loadAvg()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				env["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		env["commit"] = strings.TrimSpace(string(out))
	}
	return env
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute load averages: how busy
// the machine was, which sets the tails of every figure.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func method(opts benchOptions) []string {
	m := []string{
		"broker: mosquitto started by doorbench on a free loopback port with its stock settings (only a listener and allow_anonymous); mosquitto-nodelay: the same with set_tcp_nodelay true; embedded: the bridge's own mochi-mqtt broker",
		"relays: the sim driver's state_file in " + opts.StateDir + ", followed with " + opts.Watch + "; a version is timed after it was read (upper bound)",
		"MQTT: a minimal raw-socket client publishes (alarm QoS 1 retained, commands QoS 0) and times messages as they are read off the socket",
		fmt.Sprintf("bridge: heartbeat_interval %v, heartbeat_timeout %v, relock_delay %v, alarm_latch false; doors alternate fail_safe / fail_secure", opts.HeartbeatInterval, opts.HeartbeatTimeout, opts.RelockDelay),
		fmt.Sprintf("command stream: %d commands at QoS 0, one every %v without waiting for their effect, UNLOCK and LOCK alternating on each door, the doors in turn; command_relay_ms to the relay change in the state file, command_echo_ms to the door's state message; a command the bridge's audit events (B/N/events) neither accepted nor refused is lost", opts.Commands, opts.CommandGap),
		"p99 is the nearest-rank percentile: with fewer than 100 rounds it is the maximum",
	}
	if opts.Console {
		m = append(m, "console: http.console read_only, with one page's event stream (/console/api/stream) open through the steady phases")
	}
	return m
}

// benchFlags is doorbench's command line.
type benchFlags struct {
	opts         benchOptions
	bin, jsonOut string
	keep         bool
}

// parseBenchFlags parses doorbench's flags; on an error it has written the
// message to stderr and reports false.
func parseBenchFlags(args []string, stderr io.Writer) (benchFlags, bool) {
	fs := flag.NewFlagSet("doorbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	doors := fs.String("doors", "4,64,256", "door counts to measure, comma-separated (half fail-safe, half fail-secure)")
	broker := fs.String("broker", "mosquitto", "brokers, comma-separated: mosquitto (stock, as users run it), mosquitto-nodelay (set_tcp_nodelay true), embedded; or all")
	rounds := fs.Int("rounds", 20, "rounds per figure")
	idle := fs.Duration("idle", 30*time.Second, "idle window for cpu_idle_pct")
	hbInterval := fs.Duration("heartbeat-interval", time.Second, "watchdog.heartbeat_interval of the bridge (its default)")
	hbTimeout := fs.Duration("heartbeat-timeout", 3*time.Second, "watchdog.heartbeat_timeout of the bridge (its default)")
	commands := fs.Int("commands", 1000, "commands in the stream (the commands phase)")
	commandGap := fs.Duration("command-gap", 20*time.Millisecond, "time between two commands of the stream")
	commandDoors := fs.Int("command-doors", 0, "the stream takes turns on the first N doors (0: all of them; 1: UNLOCK and LOCK alternate on one door)")
	relock := fs.Duration("relock-delay", 200*time.Millisecond, "watchdog.relock_delay (short, so rounds follow each other quickly)")
	watch := fs.String("watch", "inotify", "how the state file is followed: inotify or poll (every 250µs, a cross-check)")
	pahoClients := fs.Int("paho-clients", 7, "paho clients with default keepalive for the comparison figure (0 skips it; it takes ~90 s)")
	mosq := fs.String("mosquitto", "/usr/sbin/mosquitto", "mosquitto binary")
	bin := fs.String("bin", "", "doorbridge binary (default: go build from the tree)")
	jsonOut := fs.String("json", "", "write the figures as JSON to this file")
	keep := fs.Bool("keep", false, "keep the scratch directory (configs, logs, state files)")
	only := fs.String("only", "", "measure only these, comma-separated: "+strings.Join(phases, ", ")+" (default all)")
	stateDir := fs.String("state-dir", defaultStateDir(), "directory for the sim driver's state files (tmpfs keeps file-system journaling out of the figures)")
	console := fs.Bool("console", false, "serve the web console (read_only) and keep a page's event stream open through idle, alarm and command: the console's cost")
	fs.StringVar(&bridgeLogLevel, "log-level", "info", "the bridge's -log-level (info logs every relay change, as in production)")
	if err := fs.Parse(args); err != nil {
		return benchFlags{}, false
	}
	opts := benchOptions{Rounds: *rounds, Idle: *idle, HeartbeatInterval: *hbInterval, HeartbeatTimeout: *hbTimeout,
		RelockDelay: *relock, Commands: *commands, CommandGap: *commandGap, CommandDoors: *commandDoors, Watch: *watch, PahoClients: *pahoClients, Mosquitto: *mosq, StateDir: *stateDir, Console: *console,
		Only: map[string]bool{}}
	if *only != "" {
		for _, p := range strings.Split(*only, ",") {
			p = strings.TrimSpace(p)
			if !contains(phases, p) {
				fmt.Fprintf(stderr, "doorbench: --only: unknown %q (want %s)\n", p, strings.Join(phases, ", "))
				return benchFlags{}, false
			}
			opts.Only[p] = true
		}
	}
	for _, s := range strings.Split(*doors, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1000 {
			fmt.Fprintf(stderr, "doorbench: --doors: %q is not a door count (1-1000)\n", s)
			return benchFlags{}, false
		}
		opts.Doors = append(opts.Doors, n)
	}
	if *broker == "all" {
		opts.Brokers = brokerKinds
	} else {
		for _, k := range strings.Split(*broker, ",") {
			k = strings.TrimSpace(k)
			if !contains(brokerKinds, k) {
				fmt.Fprintf(stderr, "doorbench: --broker: unknown %q (want %s, or all)\n", k, strings.Join(brokerKinds, ", "))
				return benchFlags{}, false
			}
			opts.Brokers = append(opts.Brokers, k)
		}
	}
	if opts.Rounds < 1 || opts.Idle <= 0 || opts.Commands < 1 || opts.CommandGap <= 0 {
		fmt.Fprintln(stderr, "doorbench: --rounds and --commands must be at least 1, --idle and --command-gap positive")
		return benchFlags{}, false
	}
	return benchFlags{opts: opts, bin: *bin, jsonOut: *jsonOut, keep: *keep}, true
}
