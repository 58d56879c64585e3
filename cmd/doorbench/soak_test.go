package main

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestSoak runs the chaos soak (soak.go) against the doorbridge binary built
// from the tree with -race, on a real mosquitto. It is skipped unless
// DOORBRIDGE_SOAK holds a duration: 60s in .ci/run, hours by hand. The seed
// comes from DOORBRIDGE_SOAK_SEED, else from the clock; it is logged, and a
// violation names it with the step, so the sequence can be replayed. It
// runs on mosquitto (no persistence), then on the bridge's embedded broker,
// half the duration each; DOORBRIDGE_SOAK_BROKER picks one,
// DOORBRIDGE_SOAK_FAULTS=0 leaves the relay faults out.
//
//	DOORBRIDGE_SOAK=60s go test -run TestSoak -v ./cmd/doorbench
//	DOORBRIDGE_SOAK=2h DOORBRIDGE_SOAK_SEED=42 go test -run TestSoak -timeout 3h ./cmd/doorbench
func TestSoak(t *testing.T) {
	v := os.Getenv("DOORBRIDGE_SOAK")
	if v == "" {
		t.Skip("set DOORBRIDGE_SOAK to a duration (60s in .ci/run) to run the chaos soak")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("DOORBRIDGE_SOAK=%q: want a duration such as 60s", v)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DOORBRIDGE_SOAK_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("DOORBRIDGE_SOAK_SEED=%q: %v", s, err)
		}
	}
	const mosq = "/usr/sbin/mosquitto"
	if _, err := exec.LookPath(mosq); err != nil {
		t.Fatalf("the soak needs mosquitto (%s): apt-get install mosquitto (.ci/run does)", mosq)
	}
	brokers := []string{"mosquitto", "embedded"}
	if b := os.Getenv("DOORBRIDGE_SOAK_BROKER"); b != "" {
		brokers = []string{b}
	}
	noFaults := os.Getenv("DOORBRIDGE_SOAK_FAULTS") == "0"
	t.Logf("seed %d, %v over %v, relay faults %v (replay: DOORBRIDGE_SOAK=%v DOORBRIDGE_SOAK_SEED=%d)", seed, d, brokers, !noFaults, d, seed)
	bin, err := buildBridgeFlags(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	// The duration is shared: the short form in .ci/run takes as long as
	// it did with one broker.
	for _, broker := range brokers {
		t.Run(broker, func(t *testing.T) {
			dir := t.TempDir()
			err := runSoak(soakOptions{Duration: d / time.Duration(len(brokers)), Seed: seed, Bin: bin, Mosquitto: mosq,
				Broker: broker, NoFaults: noFaults, Dir: dir, Log: testWriter{t}})
			if err == nil {
				err = checkRaceLog(dir + "/doorbridge.log")
			}
			if err != nil {
				if b, rerr := os.ReadFile(dir + "/doorbridge.log"); rerr == nil {
					t.Logf("doorbridge log (last 8 KiB):\n%s", b[max(0, len(b)-8192):])
				}
				t.Fatalf("%v\nreplay: DOORBRIDGE_SOAK=%v DOORBRIDGE_SOAK_SEED=%d DOORBRIDGE_SOAK_BROKER=%s go test -count=1 -run '^TestSoak$' -v ./cmd/doorbench",
					err, d, seed, broker)
			}
		})
	}
}

// testWriter sends the soak's progress to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
