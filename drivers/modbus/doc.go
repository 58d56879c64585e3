// Package modbus drives the coils and reads the discrete inputs of a Modbus
// relay board (TCP or RTU) with github.com/simonvetter/modbus.
//
// Config (type "modbus"):
//
//	url:           "tcp://host:502" or "rtu:///dev/ttyUSB0" (required)
//	unit_id:       1 (1-255)
//	speed:         9600 (RTU baud rate)
//	timeout:       500ms (per request, at most 500ms; Set never blocks longer)
//	poll_interval: 100ms (discrete input polling)
//
// Outputs are coils, written with function 05 (write single coil); channel is
// the 0-based coil address. Opening an output writes its initial level at
// once: a Modbus board keeps its coil state, so a coil left on by a previous
// run must be written off before anything else. Inputs are discrete inputs
// (channel = 0-based input address), read by a polling goroutine; Read serves
// the last poll and fails when that poll failed or is stale.
//
// One goroutine owns the client and serializes writes and polls. After a
// link error it closes the client and re-opens it on the next operation;
// failed reconnects back off (100ms doubling to 5s) and fail fast meanwhile.
// Coils keep their level when doorbridge dies: only the board's own
// communication-loss timeout (if it has one) turns them off.
package modbus
