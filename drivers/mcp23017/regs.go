package mcp23017

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/doorbridge/doorbridge/drivers"
)

// Registers of port A in the IOCON.BANK = 0 map; port B's is the next
// address.
const (
	regIODIR = 0x00 // direction, 1 = input (power-on 0xFF)
	regIPOL  = 0x02 // input polarity inversion
	regIOCON = 0x0A // configuration, mirrored at 0x0B
	regGPPU  = 0x0C // 100k pull-ups
	regGPIO  = 0x12 // port level
	regOLAT  = 0x14 // output latch
)

// IOCON bits.
const ioconBank = 0x80

// regName names a port register for errors ("OLATA").
func regName(reg byte) string {
	names := map[byte]string{regIODIR: "IODIR", regIPOL: "IPOL", regIOCON: "IOCON", regGPPU: "GPPU", regGPIO: "GPIO", regOLAT: "OLAT"}
	base := reg &^ 1
	return names[base] + string(rune('A'+reg-base))
}

// pin is a pin number 0-15: GPA0-7 are 0-7, GPB0-7 are 8-15.
type pin int

func (p pin) port() byte { return byte(p) / 8 }
func (p pin) mask() byte { return 1 << (byte(p) % 8) }

// String names the pin as the datasheet does ("GPB3").
func (p pin) String() string { return fmt.Sprintf("GP%c%d", 'A'+p.port(), int(p)%8) }

// parsePin parses "0".."15", "A0".."B7" or "GPA0".."GPB7" (any case).
func parsePin(channel string) (pin, error) {
	if n, err := strconv.Atoi(channel); err == nil {
		if n < 0 || n > 15 {
			return 0, fmt.Errorf("want 0-15: %w", drivers.ErrUnknownChannel)
		}
		return pin(n), nil
	}
	s := strings.TrimPrefix(strings.ToUpper(channel), "GP")
	if len(s) == 2 && (s[0] == 'A' || s[0] == 'B') && s[1] >= '0' && s[1] <= '7' {
		return pin(int(s[0]-'A')*8 + int(s[1]-'0')), nil
	}
	return 0, fmt.Errorf(`want 0-15, A0-A7 or B0-B7: %w`, drivers.ErrUnknownChannel)
}
