package bridge

import (
	"errors"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/doorbridge/doorbridge/config"
)

// metrics live in the bridge's own registry, so each test gets a fresh one.
type metrics struct {
	lockEnergized  *prometheus.GaugeVec
	doorLocked     *prometheus.GaugeVec
	hazardActive   *prometheus.GaugeVec
	mqttConnected  prometheus.Gauge
	commands       *prometheus.CounterVec
	hazardsRaised  *prometheus.CounterVec // doorbridge_watchdog_trips_total: the name predates the other hazards; a contract
	relayWrites    *prometheus.CounterVec
	heartbeatRTT   prometheus.Histogram
	mqttReconnects prometheus.Counter
	publishDropped prometheus.Counter
	driverErrors   *prometheus.CounterVec

	hazardDuration   *prometheus.HistogramVec
	hazardRelease    prometheus.Histogram
	commandsRejected *prometheus.CounterVec
	buildInfo        *prometheus.GaugeVec
	auditDropped     prometheus.Counter
	mqttDropped      *prometheus.CounterVec
	stateUnsaved     prometheus.Gauge
	brokerDelayed    *prometheus.CounterVec
	brokerShed       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	// The Go runtime and the process (go_goroutines, process_resident_memory_bytes,
	// open fds...): a leak shows there first, and the soak test watches them.
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
		stateUnsaved: f.NewGauge(prometheus.GaugeOpts{
			Name: "doorbridge_state_unsaved_records", Help: "State records (latch, lockdown, battery...) whose last value could not be written to bridge.state_dir; retried every tick.",
		}),
		mqttConnected: f.NewGauge(prometheus.GaugeOpts{
			Name: "doorbridge_mqtt_connected", Help: "1 while the MQTT connection is up and its heartbeat round-trips.",
		}),
		commands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_commands_total", Help: "Commands received, by door and result (accepted, rejected, ignored).",
		}, []string{"door", "result"}),
		hazardsRaised: f.NewCounterVec(prometheus.CounterOpts{
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
		driverErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_driver_errors_total", Help: "Relay writes that failed, by driver (a door whose relay cannot be set is JAMMED and retried).",
		}, []string{"driver"}),
		hazardDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "doorbridge_hazard_duration_seconds", Help: "How long each hazard was active, observed when it clears.",
			Buckets: []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600},
		}, []string{"hazard"}),
		hazardRelease: f.NewHistogram(prometheus.HistogramOpts{
			Name: "doorbridge_hazard_release_seconds", Help: "From the control loop seeing a hazard rise to its relay writes being done (drivers included); the budget is 1 s.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		commandsRejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_commands_rejected_total", Help: "Commands rejected or ignored, by door and reason (unknown_command, stale, too_large, hazard, code, lockout, unknown_door, retained).",
		}, []string{"door", "reason"}),
		buildInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doorbridge_build_info", Help: "Always 1; the labels say which doorbridge runs.",
		}, []string{"version", "goversion"}),
		auditDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "doorbridge_audit_file_dropped_total", Help: "Audit events not written to audit.file (queue full or write error); they still went to the log and MQTT.",
		}),
		mqttDropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_mqtt_messages_dropped_total", Help: "Incoming MQTT messages dropped before the control loop, by reason (oversized, queue_full, bad_heartbeat) and queue (safety, other).",
		}, []string{"reason", "queue"}),
		brokerDelayed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_embedded_broker_delayed_total", Help: "Messages for the bridge whose publisher the embedded broker held back until the bridge's queue in it had room, by the bridge's queue they are for (safety, other).",
		}, []string{"queue"}),
		brokerShed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "doorbridge_embedded_broker_shed_total", Help: "Messages for the bridge the embedded broker did not deliver: commands and other non-safety messages that found its queue in the broker over half full for 100 ms (other); safety messages it could not queue in 5 s, for which it ended the bridge's connection instead (safety).",
		}, []string{"queue"}),
	}
	for _, q := range []string{queueSafety, queueOther} {
		m.brokerDelayed.WithLabelValues(q)
		m.brokerShed.WithLabelValues(q)
	}
	for _, r := range []string{dropOversized, dropQueueFull} {
		m.mqttDropped.WithLabelValues(r, queueSafety)
		m.mqttDropped.WithLabelValues(r, queueOther)
	}
	m.mqttDropped.WithLabelValues(dropBadHeartbeat, queueSafety)
	for _, h := range AllHazards() {
		m.hazardActive.WithLabelValues(h.String())
		m.hazardsRaised.WithLabelValues(h.String())
		m.hazardDuration.WithLabelValues(h.String())
	}
	return m
}

// Reasons a command is rejected: the reason label of
// doorbridge_commands_rejected_total, a small fixed set so that no payload
// or topic can grow the number of series.
const (
	rejectUnknownCommand = "unknown_command" // not LOCK, UNLOCK, OPEN or valid JSON
	rejectStale          = "stale"           // its ts is older than MaxCommandAge
	rejectTooLarge       = "too_large"       // over MaxCommandSize
	rejectHazard         = "hazard"          // it would power a lock during a hazard (R17)
	rejectCode           = "code"            // no code, a wrong code, or a code check already running
	rejectLockout        = "lockout"         // the keypad is locked out after wrong codes
	rejectUnknownDoor    = "unknown_door"    // B/N/<door>/set for a door that is not configured
	rejectRetained       = "retained"        // a retained command (ignored, R18)
	rejectSuperseded     = "superseded"      // its code check ended after a later command, a hazard or a reconnect (R21)
)

var rejectReasons = []string{rejectUnknownCommand, rejectStale, rejectTooLarge, rejectHazard,
	rejectCode, rejectLockout, rejectUnknownDoor, rejectRetained, rejectSuperseded}

// unknownDoorLabel is the door label of commands for doors that do not
// exist: the id from the topic would let anyone add series.
const unknownDoorLabel = "(unknown)"

// parseRejectReason is the reason for a ParseDoorCommand error.
func parseRejectReason(err error) string {
	switch {
	case errors.Is(err, ErrCommandTooLarge):
		return rejectTooLarge
	case errors.Is(err, ErrCommandStale):
		return rejectStale
	}
	return rejectUnknownCommand
}

// setup stamps the build and creates every door's series at zero, so that
// rates and dashboards work before the first event.
func (m *metrics) setup(version string, doors []config.Door) {
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	labels := []string{"lockdown", unknownDoorLabel}
	for _, d := range doors {
		labels = append(labels, d.ID)
	}
	for _, d := range labels {
		for _, r := range rejectReasons {
			m.commandsRejected.WithLabelValues(d, r)
		}
	}
}

// Delayed and Shed count the embedded broker's flow (broker.Metrics).
func (m *metrics) Delayed(safety bool) { m.brokerDelayed.WithLabelValues(queueOf(safety)).Inc() }
func (m *metrics) Shed(safety bool)    { m.brokerShed.WithLabelValues(queueOf(safety)).Inc() }
