package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics live in the bridge's own registry, so each test gets a fresh one.
type metrics struct {
	lockEnergized  *prometheus.GaugeVec
	doorLocked     *prometheus.GaugeVec
	hazardActive   *prometheus.GaugeVec
	mqttConnected  prometheus.Gauge
	commands       *prometheus.CounterVec
	watchdogTrips  *prometheus.CounterVec
	relayWrites    *prometheus.CounterVec
	heartbeatRTT   prometheus.Histogram
	mqttReconnects prometheus.Counter
	publishDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		lockEnergized: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doorbridge_lock_energized", Help: "1 while the door's lock is powered.",
		}, []string{"door"}),
		doorLocked: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doorbridge_door_locked", Help: "1 while the door is locked (from its lock power and fail mode).",
		}, []string{"door"}),
		hazardActive: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doorbridge_hazard_active", Help: "1 while the hazard is active (it keeps locks unpowered).",
		}, []string{"hazard"}),
		mqttConnected: f.NewGauge(prometheus.GaugeOpts{
			Name: "doorbridge_mqtt_connected", Help: "1 while the MQTT connection is up and its heartbeat round-trips.",
		}),
		commands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_commands_total", Help: "Commands received, by door and result (accepted, rejected, ignored).",
		}, []string{"door", "result"}),
		watchdogTrips: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_watchdog_trips_total", Help: "Times each hazard was raised.",
		}, []string{"hazard"}),
		relayWrites: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_relay_writes_total", Help: "Changes of lock power written to relays, by door.",
		}, []string{"door"}),
		heartbeatRTT: f.NewHistogram(prometheus.HistogramOpts{
			Name: "doorbridge_heartbeat_rtt_seconds", Help: "Round trip of the heartbeat through the broker.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		mqttReconnects: f.NewCounter(prometheus.CounterOpts{
			Name: "doorbridge_mqtt_connects_total", Help: "MQTT connections established (the first one included).",
		}),
		publishDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "doorbridge_mqtt_publish_dropped_total", Help: "Messages dropped because the publish queue was full (state is republished).",
		}),
	}
	for _, h := range AllHazards() {
		m.hazardActive.WithLabelValues(h.String())
		m.watchdogTrips.WithLabelValues(h.String())
	}
	return m
}
