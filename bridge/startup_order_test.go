package bridge

import (
	"sync"
	"testing"

	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/prometheus/client_golang/prometheus"
)

// registryWatchDriver notes, at each output's opening (its off write), how
// many metric families the bridge's registry holds already.
type registryWatchDriver struct {
	drivers.Driver
	reg *prometheus.Registry

	mu       sync.Mutex
	families []int
}

func (d *registryWatchDriver) OpenOutput(channel string, initial bool) (drivers.Output, error) {
	mfs, _ := d.reg.Gather()
	d.mu.Lock()
	d.families = append(d.families, len(mfs))
	d.mu.Unlock()
	return d.Driver.OpenOutput(channel, initial)
}

// Every relay is written off before the metrics registry is filled: its Go
// and process collectors, and a series per door, took milliseconds of the
// start-up budget (exec → every relay off) before the first off write.
func TestOffWritesComeBeforeTheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	drv := &registryWatchDriver{Driver: sim.New(sim.Options{}), reg: reg}
	cfg := testConfig("tcp://127.0.0.1:1")
	b, err := Open(cfg, Options{Log: testLogger(t), Registry: reg, Drivers: map[string]drivers.Driver{"sim": drv}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.closeDrivers)
	t.Cleanup(b.Close)
	drv.mu.Lock()
	defer drv.mu.Unlock()
	if len(drv.families) != len(cfg.Doors) {
		t.Fatalf("%d outputs opened, want %d (one per door)", len(drv.families), len(cfg.Doors))
	}
	for i, n := range drv.families {
		if n != 0 {
			t.Fatalf("output %d opened with %d metric families registered already, want none", i, n)
		}
	}
	if mfs, _ := reg.Gather(); len(mfs) == 0 {
		t.Fatal("no metric registered once Open returned")
	}
}
