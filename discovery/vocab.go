package discovery

import "github.com/doorbridge/doorbridge/mqttapi"

// The values the bridge publishes, from its contract: HA ignores, with a
// warning, a value of an enum sensor that is not in its options, and an
// event whose type is not in event_types.
var (
	causes     = mqttapi.Causes()
	eventTypes = mqttapi.EventTypes()
)

var failModes = []string{"fail_safe", "fail_secure"}
