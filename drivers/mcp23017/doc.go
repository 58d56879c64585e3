// Package mcp23017 drives the MCP23017 16-bit I2C port expander found on many
// relay HATs, through periph.io's I2C bus (Linux /dev/i2c-N).
//
// Config (type "mcp23017"):
//
//	bus:     "/dev/i2c-1", "1" or "I2C1" (required)
//	address: 0x20 (0x20-0x27)
//	pull_up: false; enables the 100k pull-up of inputs opened with pull ""
//
// Channels are "0".."15" (GPA0..7 = 0..7, GPB0..7 = 8..15), or "A0".."B7"
// ("GPA0".."GPB7"). GPA7 and GPB7 are output only (Microchip datasheet, rev.
// C onwards), so inputs there are refused.
//
// Safe start: at power-on every pin is an input (IODIR = 0xFF). Opening an
// output writes the output latch (OLAT) with its initial level first and
// only then clears its IODIR bit, so the pin never drives another level. A
// pin already an output (left by a previous run; the chip keeps its registers
// while powered) goes straight to its initial level. Pins no channel opened
// are never changed: the driver keeps shadows of IODIR, IPOL, GPPU and OLAT
// read at open and writes whole port registers from them.
//
// The register map used is IOCON.BANK = 0 (power-on default). Open checks
// IOCON and refuses a chip in BANK = 1 mode. Only single registers and A/B
// register pairs are accessed, which works whatever IOCON.SEQOP is.
//
// The chip keeps its outputs when doorbridge dies: only a watchdog or a power
// cycle turns them off.
package mcp23017
