// Package policy is doorbridge's whole safety decision: what each lock's
// power should be, and which user requests are refused. It is pure (no I/O,
// no clock of its own, no project imports): the control loop gathers the
// inputs, calls it and applies what it returns, so every rule is tested
// here exhaustively and with property tests.
//
// The principle it serves: on any hazard, lock power goes off (de-energize to
// trip). Off unlocks a fail-safe door (maglock) and locks a fail-secure door
// (electric strike): exactly what the hardware does when its power is cut.
//
// The loop calls it in this order, for every evaluation:
//
//	Hold          the hazards in effect: the raw ones, held for relock_delay after they clear
//	DoorHazards   those that apply to one door: minus the battery hold (BatteryHold),
//	              plus the driver hazard (DriverHazard)
//	MomentaryEnds whether a running momentary OPEN ends now (a hazard or its expiry)
//	DoorInputs    what the door's contact, exit button and lock sense mean: the
//	              REX window, the early end of a momentary OPEN after a passage
//	Decide        the lock power and its cause, with the watchdog override
//	Refusal       (on a request) whether it would power a lock during a hazard
//
// Each function names the rules (R1...) it implements; docs/SAFETY-RULES.md
// defines them and lists the test that proves each.
package policy
