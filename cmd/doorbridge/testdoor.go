package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/gpio"
	"github.com/doorbridge/doorbridge/internal/statefile"
)

// cmdTestDoor walks an installer through one door: what its fail mode
// means, a pulse of lock power, its inputs live. It drives the relay
// directly, so it refuses to run while a bridge with the same id is online,
// and it always leaves the relay off (the safe state), on Ctrl-C too.
func cmdTestDoor(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test-door", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	force := fs.Bool("force", false, "run even when test-door cannot check that no bridge runs: the broker cannot be reached, or bridge.state_dir's lock cannot be checked for a reason other than permission (a held lock, or one it may not read, always refuses)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the broker's answer")
	pulse := fs.Duration("pulse", 3*time.Second, "how long to power the lock in the pulse step (1s–30s)")
	watch := fs.Duration("watch", 15*time.Second, "how long to show the inputs live")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: doorbridge test-door [-c FILE] [-force] [-pulse 3s] [-watch 15s] DOOR")
		fs.PrintDefaults()
	}
	// The door may come before or after the flags.
	var doorID string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		doorID, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if doorID == "" && fs.NArg() == 1 {
		doorID = fs.Arg(0)
	} else if fs.NArg() != 0 || doorID == "" {
		fs.Usage()
		return 2
	}
	if *pulse < config.MinUnlockTime || *pulse > config.MaxUnlockTime {
		fmt.Fprintf(stderr, "doorbridge: test-door: -pulse %v is outside 1s–30s\n", *pulse)
		return 2
	}
	cfg, err := config.Load(config.Path(*file))
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: %v\n", err)
		return 1
	}
	// Every way a session ends or stops leaves the relay off: Ctrl-C, a
	// kill, SIGHUP (a dropped SSH session), SIGQUIT (Ctrl-\), SIGPIPE
	// (stdout gone; heard from any descriptor, a dead broker socket too),
	// Ctrl-Z and a read or write from the background (SIGTSTP, SIGTTIN,
	// SIGTTOU). The runtime's default for all but the first two would end
	// or stop test-door with the relay as it is.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	defer stop()
	td := &testDoor{
		cfg: cfg, in: lines(stdin), out: stdout, pulse: *pulse, watch: *watch,
		poll: 50 * time.Millisecond, force: *force,
		online: func(ctx context.Context) (bool, error) { return bridgeOnline(ctx, cfg, *timeout) },
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if err := td.run(ctx, doorID); err != nil {
		fmt.Fprintf(stderr, "doorbridge: test-door: %v\n", err)
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	return 0
}

// testDoor is one run of test-door.
type testDoor struct {
	cfg   *config.Config
	in    <-chan string // stdin, line by line; closed at EOF
	out   io.Writer
	pulse time.Duration
	watch time.Duration
	poll  time.Duration
	force bool
	log   *slog.Logger
	// online reports whether a bridge with this bridge id is online.
	online func(context.Context) (bool, error)
	// drivers, when set, supplies opened drivers by id (tests).
	drivers map[string]drivers.Driver

	door   *config.Door
	mode   bridge.FailMode
	relay  drivers.Output
	flush  drivers.Flusher // the relay's driver, when it batches writes
	inputs []testInput
}

type testInput struct {
	name string
	cfg  config.Line
	in   drivers.Input
}

// errOnline refuses to drive a relay that a running bridge owns.
var errOnline = errors.New("refused")

func (td *testDoor) run(ctx context.Context, doorID string) (err error) {
	td.door = td.cfg.Door(doorID)
	if td.door == nil {
		ids := make([]string, 0, len(td.cfg.Doors))
		for _, d := range td.cfg.Doors {
			ids = append(ids, d.ID)
		}
		return fmt.Errorf("no door %q in %s (doors: %s)", doorID, td.cfg.File, strings.Join(ids, ", "))
	}
	if td.mode, err = bridge.ParseFailMode(td.door.FailMode); err != nil {
		return fmt.Errorf("door %q: %w", doorID, err)
	}
	release, err := td.lockStateDir()
	if err != nil {
		return err
	}
	defer release()
	online, err := td.online(ctx)
	switch {
	case online:
		return fmt.Errorf("%w: a bridge with id %q is online (retained %s/%s/availability = online, or it took its MQTT session back from test-door); stop it first (systemctl stop doorbridge): test-door drives the relay itself",
			errOnline, td.cfg.Bridge.ID, td.cfg.MQTT.BaseTopic, td.cfg.Bridge.ID)
	case err != nil && !td.force:
		return fmt.Errorf("cannot tell whether a bridge with id %q is running: %v; stop it and re-run with -force", td.cfg.Bridge.ID, err)
	case err != nil:
		fmt.Fprintf(td.out, "Broker unreachable (%v): going on because of -force.\n", err)
	}

	closers, err := td.open()
	defer func() {
		// Whatever happened, the relay ends off: the safe state.
		if td.relay != nil {
			if offErr := td.set(false); offErr != nil && err == nil {
				err = fmt.Errorf("turning the relay off: %w", offErr)
			}
			fmt.Fprintf(td.out, "\nLeft with lock power OFF (the safe state): %s.\n", td.meaning(false))
		}
		for _, c := range closers {
			c()
		}
	}()
	if err != nil {
		return err
	}

	td.describe()
	steps := []struct {
		prompt string
		do     func(context.Context) error
	}{
		{"Show the inputs now?", func(context.Context) error { td.showInputs(); return nil }},
		{fmt.Sprintf("Pulse: power the lock for %v (%s), then off?", td.pulse, td.meaning(true)), td.doPulse},
		{fmt.Sprintf("Watch the inputs live for %v (open the door, press the exit button)?", td.watch), func(ctx context.Context) error {
			return td.watchInputs(ctx, td.watch)
		}},
	}
	for _, s := range steps {
		yes, err := td.ask(ctx, s.prompt)
		if err != nil {
			return err
		}
		if yes {
			if err := s.do(ctx); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(td.out, "Done.")
	return nil
}

// serviceStateDirs are where the shipped service keeps an empty state_dir:
// the systemd unit's StateDirectory= ($STATE_DIRECTORY) and the Docker
// image's /data. test-door, run from a shell, resolves an empty state_dir
// by its own environment, so it looks there too.
var serviceStateDirs = []string{"/var/lib/doorbridge", "/data"}

// lockStateDir takes bridge.state_dir's lock, which a bridge with this
// config on this machine holds while it runs (bridge/state.go): with an
// empty state_dir in the file, also the service's (serviceStateDirs). That
// answer is certain where the broker's is not (an ACL that hides the
// retained availability, a link slowed down), and holding the locks for
// the whole run keeps a bridge from running under test-door: one started
// meanwhile writes its relays off (first, as always) and stops.
//
// A held lock refuses, -force or not. A lock file that is missing: no
// bridge ever ran with that state_dir here. One test-door may not open
// refuses too (the fix is to run it as root, not -force); any other error
// refuses unless -force.
func (td *testDoor) lockStateDir() (release func(), err error) {
	var held []*os.File
	release = func() {
		for _, f := range held {
			f.Close()
		}
	}
	dirs := []string{td.cfg.Bridge.StateDir}
	if def, _ := config.DefaultStateDir(td.cfg.Bridge.ID, os.Getenv); def == td.cfg.Bridge.StateDir {
		dirs = append(dirs, serviceStateDirs...)
	}
	seen := map[string]bool{}
	for i, dir := range dirs {
		if dir == "" { // a Config built in code: nothing to check
			continue
		}
		if dir = filepath.Clean(dir); seen[dir] {
			continue // one lock file, opened twice, would lock out test-door itself
		}
		seen[dir] = true
		f, err := statefile.Lock(dir, false)
		if i == 0 && errors.Is(err, fs.ErrNotExist) {
			// No bridge has run with this config's state_dir yet: make the
			// lock file, so that one started meanwhile stops.
			f, err = makeLock(dir)
		}
		switch {
		case err == nil:
			held = append(held, f)
			continue
		case errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, statefile.ErrLocked):
			err = fmt.Errorf("%w: a doorbridge is running on this machine (bridge.state_dir's lock %v); stop it first (systemctl stop doorbridge, or docker stop): test-door drives the relay itself. If that is another bridge's state_dir, give this config its own (bridge.state_dir)",
				errOnline, err)
		case errors.Is(err, fs.ErrPermission):
			err = fmt.Errorf("cannot tell whether a doorbridge runs on this machine: bridge.state_dir's lock: %v; run test-door as root or as the bridge's user", err)
		case td.force:
			fmt.Fprintf(td.out, "Cannot check bridge.state_dir's lock (%v): going on because of -force.\n", err)
			continue
		default:
			err = fmt.Errorf("cannot tell whether a doorbridge runs on this machine: bridge.state_dir's lock: %v; stop the bridge and re-run with -force", err)
		}
		release()
		return nil, err
	}
	return release, nil
}

// makeLock creates and takes dir's lock file when dir exists, owned like
// dir (test-door runs as root; the bridge, as dir's owner, must still open
// it). A missing dir stays missing: fs.ErrNotExist.
func makeLock(dir string) (*os.File, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	f, err := statefile.Lock(dir, true)
	if err != nil {
		return nil, err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(sys.Uid), int(sys.Gid)) // as root; else it is ours already
	}
	return f, nil
}

// open opens the door's relay and inputs the bridge's way: the relay with
// drivers.OpenRelay at its off level, written out at once as the bridge's
// relay writer does; each input of config.Door.Inputs with
// drivers.OpenInput. It returns functions that close what it opened.
func (td *testDoor) open() ([]func(), error) {
	var closers []func()
	slots := map[string]*drivers.Slot{}
	get := func(id string) (drivers.Driver, error) {
		s := slots[id]
		if s == nil {
			var err error
			if s, err = td.slot(id); err != nil {
				return nil, err
			}
			slots[id] = s
			if _, given := td.drivers[id]; !given {
				closers = append(closers, func() { _ = s.Close() })
			}
		}
		return s.Get()
	}
	r := td.door.Relay
	drv, err := get(r.Driver)
	if err != nil {
		return closers, fmt.Errorf("relay: %w", err)
	}
	out, err := drivers.OpenRelay(drv, r)
	if err != nil {
		return closers, err
	}
	td.relay = out
	td.flush, _ = drv.(drivers.Flusher)
	if err := td.flushRelay(); err != nil {
		return closers, fmt.Errorf("relay %s: %w", r.Name(), err)
	}
	for _, x := range td.door.Inputs() {
		if x.Line == nil {
			continue
		}
		drv, err := get(x.Line.Driver)
		if err != nil {
			return closers, fmt.Errorf("%s: %w", x.Name, err)
		}
		in, err := drivers.OpenInput(drv, *x.Line)
		if err != nil {
			return closers, fmt.Errorf("%s: %w", x.Name, err)
		}
		td.inputs = append(td.inputs, testInput{name: x.Name, cfg: *x.Line, in: in})
	}
	return closers, nil
}

// slot is driver id's drivers.Slot, as the bridge makes it: from its
// config entry, or a driver the tests supply.
func (td *testDoor) slot(id string) (*drivers.Slot, error) {
	if d, ok := td.drivers[id]; ok {
		return drivers.OpenedSlot(id, d, td.log), nil
	}
	for _, dc := range td.cfg.Drivers {
		if dc.ID == id {
			return drivers.NewSlot(dc, td.log)
		}
	}
	return nil, fmt.Errorf("unknown driver %q", id)
}

// set writes lock power p, and waits for it to be written out.
func (td *testDoor) set(p bool) error {
	if err := td.relay.Set(drivers.RelayLevel(td.door.Relay, p)); err != nil {
		return err
	}
	return td.flushRelay()
}

func (td *testDoor) flushRelay() error {
	if td.flush == nil {
		return nil
	}
	return td.flush.Flush()
}

// meaning says what lock power p does to this door.
func (td *testDoor) meaning(p bool) string {
	switch {
	case td.mode == bridge.FailSafe && p:
		return "door LOCKED: the maglock holds"
	case td.mode == bridge.FailSafe:
		return "door UNLOCKED: the maglock is released"
	case p:
		return "door UNLOCKED: the strike is released"
	default:
		return "door LOCKED: the strike holds the latch"
	}
}

func (td *testDoor) describe() {
	d := td.door
	kind := "maglock (fail-safe): a hazard or a cut cable UNLOCKS it"
	if td.mode == bridge.FailSecure {
		kind = "electric strike (fail-secure): a hazard or a cut cable leaves it LOCKED; people leave through its handle"
	}
	fmt.Fprintf(td.out, "Door %q (%s): %s, %s.\n", d.ID, d.Name, d.FailMode, kind)
	fmt.Fprintf(td.out, "  relay %s\n", d.Relay.Label())
	rel := gpio.ReleasedOutputs(sysRoot)
	fmt.Fprintf(td.out, "  if doorbridge dies: %s\n", whenBridgeDies(td.cfg, d, rel))
	fmt.Fprintf(td.out, "  if doorbridge stops: %s\n", whenBridgeStops(td.cfg, d, rel))
	fmt.Fprintf(td.out, "  lock power ON:  %s\n", td.meaning(true))
	fmt.Fprintf(td.out, "  lock power OFF: %s (the safe state; the relay is off now)\n", td.meaning(false))
	if len(td.inputs) == 0 {
		fmt.Fprintln(td.out, "  no inputs configured")
	}
	for _, in := range td.inputs {
		fmt.Fprintf(td.out, "  input %-10s %s\n", in.name, in.cfg.Label())
	}
}

// inputState reads one input in an installer's words.
func inputState(in testInput) string {
	v, err := in.in.Read()
	s := bridge.SenseOf(v, in.cfg.ActiveLow, err)
	if s == bridge.SenseUnknown {
		return "UNKNOWN (" + err.Error() + ")"
	}
	w, ok := inputWords[in.name]
	if !ok {
		w = [2]string{in.name + " ACTIVE", in.name + " inactive"}
	}
	if s == bridge.SenseActive {
		return w[0]
	}
	return w[1]
}

// inputWords says what each input of config.Door.Inputs means when active
// and when not.
var inputWords = map[string][2]string{
	config.InputContact:   {"door OPEN", "door closed"},
	config.InputRex:       {"exit button PRESSED", "exit button released"},
	config.InputLockSense: {"lock sensed LOCKED", "lock sensed unlocked"},
}

func (td *testDoor) showInputs() {
	if len(td.inputs) == 0 {
		fmt.Fprintln(td.out, "  (no inputs configured)")
	}
	for _, in := range td.inputs {
		fmt.Fprintf(td.out, "  %-10s %s\n", in.name, inputState(in))
	}
}

// watchInputs prints every input as it changes, for d.
func (td *testDoor) watchInputs(ctx context.Context, d time.Duration) error {
	if len(td.inputs) == 0 {
		fmt.Fprintln(td.out, "  (no inputs configured)")
		return nil
	}
	fmt.Fprintf(td.out, "Watching inputs for %v:\n", d)
	start := time.Now()
	last := make([]string, len(td.inputs))
	t := time.NewTicker(td.poll)
	defer t.Stop()
	for {
		for i, in := range td.inputs {
			if s := inputState(in); s != last[i] {
				last[i] = s
				fmt.Fprintf(td.out, "  %5.1fs  %-10s %s\n", time.Since(start).Seconds(), in.name, s)
			}
		}
		if time.Since(start) >= d {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (td *testDoor) doPulse(ctx context.Context) error {
	if err := td.set(true); err != nil {
		return fmt.Errorf("relay on: %w", err)
	}
	fmt.Fprintf(td.out, "Lock power ON: %s.\n", td.meaning(true))
	if err := td.watchInputs(ctx, td.pulse); err != nil {
		return err
	}
	if len(td.inputs) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(td.pulse):
		}
	}
	if err := td.set(false); err != nil {
		return fmt.Errorf("relay off: %w", err)
	}
	fmt.Fprintf(td.out, "Lock power OFF: %s.\n", td.meaning(false))
	return nil
}

// ask asks a yes/no question; end of input is no.
func (td *testDoor) ask(ctx context.Context, prompt string) (bool, error) {
	fmt.Fprintf(td.out, "\n%s [y/N] ", prompt)
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case l, ok := <-td.in:
		fmt.Fprintln(td.out)
		a := strings.ToLower(strings.TrimSpace(l))
		return ok && (a == "y" || a == "yes"), nil
	}
}

// lines reads r line by line on its own goroutine, so that a prompt can
// give way to Ctrl-C.
func lines(r io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(r)
		for s.Scan() {
			ch <- s.Text()
		}
	}()
	return ch
}

// bridgeOnline reports whether a bridge with cfg's id is online: its
// retained availability on the configured broker (the first of mqtt.urls
// that answers, with the bridge's TLS settings) is "online". It waits at
// most timeout per broker and for the retained message.
func bridgeOnline(ctx context.Context, cfg *config.Config, timeout time.Duration) (bool, error) {
	password, err := cfg.MQTTPassword()
	if err != nil {
		return false, err
	}
	c, err := connectOnce(cfg, cfg.MQTT.Username, password, fmt.Sprintf("%s-test-door-%d", cfg.ClientID(), os.Getpid()), timeout)
	if err != nil {
		return false, err
	}
	defer c.Disconnect(100)
	got := make(chan string, 1)
	topic := bridge.NewTopics(cfg).Availability
	st := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	ok := st.WaitTimeout(timeout)
	switch {
	case !c.IsConnectionOpen():
		return true, nil // taken back by the running bridge: see takenBack
	case !ok:
		return false, fmt.Errorf("broker: subscribe: no answer within %v", timeout)
	case st.Error() != nil:
		return false, fmt.Errorf("broker: subscribe %s: %w", topic, st.Error())
	case st.(*paho.SubscribeToken).Result()[topic] == 0x80:
		// Without the retained availability only a takeover could tell.
		return false, fmt.Errorf("broker: its ACL does not let user %q read %s, so test-door cannot see whether the bridge is online; allow it to read that topic, or stop the bridge and re-run with -force",
			cfg.MQTT.Username, topic)
	}
	// A broker sends retained messages right after the subscription is
	// acknowledged: a short wait is enough to know there is none.
	select {
	case p := <-got:
		if p == "online" {
			return true, nil
		}
	case <-time.After(min(timeout, 500*time.Millisecond)):
		// nothing retained: no bridge ever ran with this id here, or...
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return takenBack(ctx, c, takeoverGrace)
}

// takeoverGrace is how long test-door waits for a running bridge to take
// its connection back: the bridge reconnects within 2 s
// (SetMaxReconnectInterval).
const takeoverGrace = 3 * time.Second

// takenBack reports whether the broker closes c within grace. On a broker
// that makes a client's id its user name (the shipped mosquitto config:
// use_username_as_clientid), logging in as mqtt.username took a running
// bridge's connection over: the broker published the bridge's will
// ("offline"), and the bridge, reconnecting, takes the connection back.
func takenBack(ctx context.Context, c paho.Client, grace time.Duration) (bool, error) {
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !c.IsConnectionOpen() {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false, nil
}
