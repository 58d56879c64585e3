package bridge

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Detection time of the alarm-source hazard paths, from the message (or the
// last heartbeat) to the fail-safe relay written off, with a real broker
// (mosquitto with DOORBRIDGE_TEST_MOSQUITTO=1):
//
//	go test -run XXX -bench AlarmSourceRelease -benchtime 20x ./bridge/

// stampDriver records when relay "0" is written off and on.
type stampDriver struct {
	drivers.Driver
	off, on chan time.Time
}

type stampLine struct {
	drivers.Output
	d *stampDriver
}

func (d *stampDriver) OpenOutput(ch string, initial bool) (drivers.Output, error) {
	out, err := d.Driver.OpenOutput(ch, initial)
	if err != nil || ch != "0" {
		return out, err
	}
	return stampLine{Output: out, d: d}, nil
}

func (l stampLine) Set(level bool) error {
	err := l.Output.Set(level)
	c := l.d.off
	if level {
		c = l.d.on
	}
	select {
	case c <- time.Now():
	default:
	}
	return err
}

// startBenchBridge runs a bridge with relock_delay 0 and no latch, so that
// every round releases and relocks at once.
func startBenchBridge(b *testing.B, alarm config.Alarm) (*testbroker.Client, *stampDriver) {
	br := testbroker.Start(b)
	cfg := testConfig(br.URL())
	cfg.Watchdog.RelockDelay = 0
	cfg.Watchdog.AlarmLatch = false
	cfg.Alarms = []config.Alarm{alarm}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	d := &stampDriver{Driver: sim.New(sim.Options{}), off: make(chan time.Time, 16), on: make(chan time.Time, 16)}
	bridge, err := Open(cfg, Options{Log: testLogger(b), Drivers: map[string]drivers.Driver{"sim": d}, TickInterval: 20 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bridge.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return testbroker.Connect(b, br.URL(), "bench"), d
}

// await returns the next stamp on c, failing after wait.
func await(b *testing.B, c chan time.Time, what string) time.Time {
	select {
	case at := <-c:
		return at
	case <-time.After(wait):
		b.Fatalf("no relay %s within %v", what, wait)
		return time.Time{}
	}
}

func drainStamps(c chan time.Time) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// report adds the median and the worst latency as metrics.
func report(b *testing.B, lat []time.Duration, unit string) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median-"+unit)
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ms-max-"+unit)
}

func BenchmarkAlarmSourceRelease(b *testing.B) {
	b.Run("zigbee_smoke", func(b *testing.B) {
		c, d := startBenchBridge(b, zigbeeSmoke(1))
		c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": false, "battery": 90}`, true)
		await(b, d.on, "on at start")
		var lat []time.Duration
		for b.Loop() {
			drainStamps(d.off)
			t0 := time.Now()
			c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": true, "battery": 90}`, false)
			lat = append(lat, await(b, d.off, "off").Sub(t0))
			drainStamps(d.on)
			c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": false, "battery": 90}`, false)
			await(b, d.on, "on")
		}
		report(b, lat, "release")
	})
	b.Run("availability_offline", func(b *testing.B) {
		a := zigbeeSmoke(1)
		a.AvailabilityTopic, a.AvailabilityOffline = "zigbee2mqtt/+/availability", config.DefaultAvailabilityOffline
		c, d := startBenchBridge(b, a)
		c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": false}`, true)
		c.Publish("zigbee2mqtt/hall_smoke/availability", `{"state": "online"}`, true)
		await(b, d.on, "on at start")
		var lat []time.Duration
		for b.Loop() {
			drainStamps(d.off)
			t0 := time.Now()
			c.Publish("zigbee2mqtt/hall_smoke/availability", `{"state": "offline"}`, true)
			lat = append(lat, await(b, d.off, "off").Sub(t0))
			drainStamps(d.on)
			c.Publish("zigbee2mqtt/hall_smoke/availability", `{"state": "online"}`, true)
			await(b, d.on, "on")
		}
		report(b, lat, "release")
	})
	b.Run("heartbeat_silence", func(b *testing.B) {
		const timeout = 500 * time.Millisecond
		a := config.DefaultAlarm("db")
		a.HeartbeatTopic, a.HeartbeatTimeout = "ha/doorbridge/heartbeat", timeout
		c, d := startBenchBridge(b, a)
		c.Publish(a.Topic, "OFF", true)
		var over []time.Duration
		for b.Loop() {
			// Heartbeats every 100 ms until the door locks and a little
			// longer, then silence.
			drainStamps(d.on)
			c.Publish(a.HeartbeatTopic, "alive", false)
			await(b, d.on, "on")
			drainStamps(d.off)
			var last time.Time
			for range 3 {
				c.Publish(a.HeartbeatTopic, "alive", false)
				last = time.Now()
				select {
				case <-d.off:
					b.Fatalf("released while heartbeats arrive")
				case <-time.After(100 * time.Millisecond):
				}
			}
			over = append(over, await(b, d.off, "off").Sub(last)-timeout)
		}
		report(b, over, "after-timeout")
	})
}
