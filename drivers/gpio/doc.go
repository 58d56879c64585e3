// Package gpio drives relay and input lines through the Linux GPIO character
// device (/dev/gpiochipN), with chips and line names discovered by
// periph.io/x/host/v3/gpioioctl.
//
// Config (type "gpio"):
//
//	chip:     "gpiochip0" (or "0", "/dev/gpiochip0", a chip label); default ""
//	          searches every chip for line names
//	debounce: software debounce of inputs, default 20ms, 0 disables
//
// Channels are a line name ("GPIO17") or an offset on the chip ("17"). An
// offset needs the chip option when the machine has more than one chip.
//
// # Output start level
//
// periph's gpioioctl cannot request an output with a first level: GPIOLine.Out
// requests the line "as is" and then reconfigures it as an output without the
// kernel's OUTPUT_VALUES attribute, so the kernel drives it low for a moment
// before Out writes the wanted level (a glitch for an active-low relay board),
// and LineSetConfig has no output values either. This package therefore issues
// the GPIO_V2_GET_LINE ioctl itself with the OUTPUT flag and an OUTPUT_VALUES
// attribute carrying the initial level, so the kernel switches the line to
// output already at that level. periph is still used for chip and line
// discovery.
//
// # Inputs: edge events
//
// Inputs are requested with both edges (GPIO_V2_LINE_FLAG_EDGE_RISING and
// _FALLING) and a watcher feeds every edge event to the debouncer, so a level
// is accepted only after it really lasted the debounce window, whatever
// happens between two of the bridge's reads. The bridge still reads inputs
// on its tick; edges make debouncing exact, they do not wake the bridge. A
// chip that cannot give edges (no interrupt) is polled: a warning says so.
// cdevLine implements periph's gpio.PinIn contract (In with gpio.BothEdges,
// WaitForEdge) itself rather than through gpioioctl.GPIOLine, whose
// WaitForEdge does not say which edge came (a level read after it can miss a
// short pulse), whose request is two-step (requested "as is", then
// reconfigured), and whose Close cannot end a wait in progress safely.
//
// # Process exit
//
// The kernel releases character-device lines when the process exits or Close
// runs. What a released output then does depends on the pinctrl driver:
// upstream drivers (and gpio-sim, see scripts/vm-gpio.sh) return it to an
// input, where the pin's pull decides the relay; Raspberry Pi kernels keep it
// driven at its last level unless dtparam=strict_gpiod is set
// (persist_gpio_outputs). ReleasedOutputs reads which case the running kernel
// is in, and a kernel that does not say is taken to keep the level (older Pi
// kernels do, without a parameter); check-config and the start-up log warn
// per door. A clean stop writes every relay off and then releases the line
// the same way: where the pull decides, a pull that turns the relay on turns
// it on as soon as doorbridge stops. PowerUpPull gives a Raspberry Pi's
// power-up pulls (Pi 1-4, Pi 5), for the warning about relays that an
// undriven pin switches on.
package gpio
