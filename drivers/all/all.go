// Package all registers every driver type; the doorbridge binary imports it.
package all

import (
	_ "github.com/doorbridge/doorbridge/drivers/gpio"     // Linux GPIO character device (Raspberry Pi relay HATs)
	_ "github.com/doorbridge/doorbridge/drivers/mcp23017" // I2C port expander relay boards
	_ "github.com/doorbridge/doorbridge/drivers/modbus"   // Modbus TCP/RTU relay boards
	_ "github.com/doorbridge/doorbridge/drivers/sim"      // simulated relays
)
