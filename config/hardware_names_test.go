package config_test

// The exact errors of the hardware-name fixtures (drivers.ChannelChecker),
// kept apart from badConfigs' literal so that the list merges easily.
func init() {
	badConfigs["bad-gpio-header-pin.yaml"] = `doors.front.relay.channel: gpio: channel "pin37" is a header pin number, not a GPIO line: want a line name as the kernel lists it (gpioinfo), e.g. "GPIO26", or a line offset on the chip, e.g. "26"; on a Raspberry Pi's 40-pin header, pin 37 is GPIO26: channel "GPIO26"`
	badConfigs["bad-gpio-bcm-name.yaml"] = `doors.front.rex.channel: gpio: channel "BCM17": line names are exact; a Raspberry Pi names BCM 17 "GPIO17": want a line name as the kernel lists it (gpioinfo), e.g. "GPIO26", or a line offset on the chip, e.g. "26"`
	badConfigs["bad-mcp23017-pin.yaml"] = `doors.front.relay.channel: mcp23017: channel "A8": want a pin 0-15, A0-A7 or B0-B7 (also GPA0-GPB7)`
	badConfigs["bad-modbus-coil.yaml"] = `doors.front.relay.channel: modbus: coil "70000": want a 0-based coil address 0-65535 (the board's manual may count from 1: coil 1 is address 0)`
	badConfigs["bad-modbus-coil-zeros.yaml"] = `doors.front.relay.channel: modbus: coil "00001": looks like the manual's numbering (1 is coil 1, address 0): want the 0-based address, e.g. "0" (the board's manual may count from 1: coil 1 is address 0)`
	badConfigs["bad-modbus-discrete-input.yaml"] = `doors.front.contact.channel: modbus: discrete input "10001": looks like the manual's numbering (10001 is discrete input 1, address 0): want the 0-based address, e.g. "0" (the board's manual may count from 1: discrete input 1 is address 0)`
	badConfigs["bad-gpio-leading-zero.yaml"] = `doors.front.relay.channel: gpio: channel "GPIO017": line names are exact; a Raspberry Pi names BCM 17 "GPIO17": want a line name as the kernel lists it (gpioinfo), e.g. "GPIO26", or a line offset on the chip, e.g. "26"`
}
