package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseBenchFlags checks doorbench's command line: the defaults, lists
// of door counts, brokers and phases, and a clear message for bad values.
func TestParseBenchFlags(t *testing.T) {
	var stderr strings.Builder
	f, ok := parseBenchFlags(nil, &stderr)
	if !ok {
		t.Fatalf("defaults refused: %s", stderr.String())
	}
	if o := f.opts; !slices.Equal(o.Doors, []int{4, 64, 256}) || !slices.Equal(o.Brokers, []string{"mosquitto"}) ||
		o.Rounds != 20 || o.Idle != 30*time.Second || o.Commands != 1000 || o.PahoClients != 7 || len(o.Only) != 0 || !o.want("kill") {
		t.Errorf("defaults: %+v", o)
	}

	f, ok = parseBenchFlags([]string{"--doors", "4, 64,256", "--broker", "all", "--rounds", "3", "--idle", "5s", "--commands", "100",
		"--paho-clients", "0", "--only", "startup, idle,commands", "--json", "out.json", "--bin", "/x/doorbridge", "--keep"}, &stderr)
	if !ok {
		t.Fatalf("refused: %s", stderr.String())
	}
	o := f.opts
	if !slices.Equal(o.Doors, []int{4, 64, 256}) || !slices.Equal(o.Brokers, brokerKinds) || o.Rounds != 3 || o.Idle != 5*time.Second ||
		o.Commands != 100 || o.PahoClients != 0 || f.jsonOut != "out.json" || f.bin != "/x/doorbridge" || !f.keep {
		t.Errorf("parsed: %+v %+v", f, o)
	}
	for _, p := range phases {
		if want := p == "startup" || p == "idle" || p == "commands"; o.want(p) != want {
			t.Errorf("--only startup,idle,commands: want(%q) = %v", p, o.want(p))
		}
	}

	f, ok = parseBenchFlags([]string{"--broker", "mosquitto-nodelay,embedded"}, &stderr)
	if !ok || !slices.Equal(f.opts.Brokers, []string{"mosquitto-nodelay", "embedded"}) {
		t.Errorf("--broker mosquitto-nodelay,embedded: %v %v", f.opts.Brokers, ok)
	}

	bad := []struct {
		args []string
		msg  string
	}{
		{[]string{"--doors", "4,x"}, `doorbench: --doors: "x" is not a door count (1-1000)`},
		{[]string{"--doors", "0"}, `doorbench: --doors: "0" is not a door count (1-1000)`},
		{[]string{"--doors", "1001"}, `doorbench: --doors: "1001" is not a door count (1-1000)`},
		{[]string{"--doors", "4,"}, `doorbench: --doors: "" is not a door count (1-1000)`},
		{[]string{"--only", "idle,nap"}, `doorbench: --only: unknown "nap" (want startup, idle, alarm, command, commands, kill, silent, faults)`},
		{[]string{"--broker", "emqx"}, `doorbench: --broker: unknown "emqx" (want mosquitto, mosquitto-nodelay, embedded, or all)`},
		{[]string{"--rounds", "0"}, "doorbench: --rounds and --commands must be at least 1, --idle and --command-gap positive"},
		{[]string{"--idle", "0s"}, "doorbench: --rounds and --commands must be at least 1, --idle and --command-gap positive"},
		{[]string{"--rounds", "many"}, `invalid value "many" for flag -rounds`},
		{[]string{"--nosuch"}, "flag provided but not defined: -nosuch"},
	}
	for _, c := range bad {
		stderr.Reset()
		if _, ok := parseBenchFlags(c.args, &stderr); ok {
			t.Errorf("%v accepted", c.args)
		} else if !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%v: stderr %q, want %q", c.args, stderr.String(), c.msg)
		}
	}
}
