package config

// A door's inputs, named as their keys under the door. Logs, audit
// details and test-door use the same names.
const (
	InputContact   = "contact"
	InputRex       = "rex"
	InputLockSense = "lock_sense"
)

// DoorInput is one input a door can have: its name (its key under the
// door) and its line, nil when the door does not have it.
type DoorInput struct {
	Name string
	Line *Line
}

// Inputs lists every input a door can have, configured or not, in a fixed
// order. It is the one list of a door's inputs: validation, check-config's
// hardware probe, the bridge and test-door walk it, so that an input added
// here (and to Door) reaches every one of them.
func (d *Door) Inputs() []DoorInput {
	return []DoorInput{
		{InputContact, d.Contact},
		{InputRex, d.Rex},
		{InputLockSense, d.LockSense},
	}
}

// HasInputs reports whether any of the door's inputs is configured.
func (d *Door) HasInputs() bool {
	for _, in := range d.Inputs() {
		if in.Line != nil {
			return true
		}
	}
	return false
}
