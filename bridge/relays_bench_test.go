package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Alarm to release of a healthy maglock (door fs, relay "0") while the
// doors listed before it are on a board that hangs or is slow (R22):
//
//	go test -run XXX -bench AlarmReleaseFaultyBoard -benchtime 20x ./bridge/
func BenchmarkAlarmReleaseFaultyBoard(b *testing.B) {
	b.Run("one_hung_board", func(b *testing.B) {
		benchFaultyRelease(b, sim.Fault{Hang: true}, "hung")
	})
	b.Run("three_slow_doors_1s", func(b *testing.B) {
		benchFaultyRelease(b, sim.Fault{Delay: time.Second}, "slow1", "slow2", "slow3")
	})
}

func benchFaultyRelease(b *testing.B, f sim.Fault, faulty ...string) {
	br := testbroker.Start(b)
	cfg := testConfig(br.URL())
	cfg.Watchdog.RelockDelay = 0
	cfg.Watchdog.AlarmLatch = false
	maglocksFirst(faulty...)(cfg)
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	s := sim.New(sim.Options{})
	d := &stampDriver{Driver: s, off: make(chan time.Time, 16), on: make(chan time.Time, 16)}
	bridge, err := Open(cfg, Options{Log: testLogger(b), Drivers: map[string]drivers.Driver{"sim": d}, TickInterval: 20 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bridge.Run(ctx) }()
	b.Cleanup(func() {
		for i := range faulty {
			s.ClearFault(faultChannels[i])
		}
		cancel()
		<-done
	})
	c := testbroker.Connect(b, br.URL(), "bench")
	topic := config.DefaultAlarm("db").Topic
	c.Publish(topic, "OFF", true)
	await(b, d.on, "on at start")
	for i := range faulty {
		s.SetFault(faultChannels[i], f)
	}
	var lat []time.Duration
	for b.Loop() {
		drainStamps(d.off)
		t0 := time.Now()
		c.Publish(topic, "ON", false)
		lat = append(lat, await(b, d.off, "off").Sub(t0))
		drainStamps(d.on)
		c.Publish(topic, "OFF", false)
		await(b, d.on, "on")
	}
	report(b, lat, "release")
}
