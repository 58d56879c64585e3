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
// violation names it with the step, so the sequence can be replayed.
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
	t.Logf("seed %d, %v (replay: DOORBRIDGE_SOAK=%v DOORBRIDGE_SOAK_SEED=%d)", seed, d, d, seed)
	dir := t.TempDir()
	bin, err := buildBridgeFlags(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	err = runSoak(soakOptions{Duration: d, Seed: seed, Bin: bin, Mosquitto: mosq, Dir: dir, Log: testWriter{t}})
	if err == nil {
		err = checkRaceLog(dir + "/doorbridge.log")
	}
	if err != nil {
		if b, rerr := os.ReadFile(dir + "/doorbridge.log"); rerr == nil {
			t.Logf("doorbridge log (last 8 KiB):\n%s", b[max(0, len(b)-8192):])
		}
		t.Fatal(err)
	}
}

// testWriter sends the soak's progress to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
