// Package all registers every driver type; the doorbridge binary imports it.
package all

import (
	_ "github.com/doorbridge/doorbridge/drivers/sim" // simulated relays
)
