package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-viper/mapstructure/v2"
	"golang.org/x/crypto/bcrypt"
)

// validID reports whether s is an id: lower-case letters, digits, _ and -,
// at least one (`^[a-z0-9_-]+$`, without a regexp compiled at start).
func validID(s string) bool {
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return s != ""
}

// Error is one validation failure: the file, the key and what would be valid.
type Error struct {
	File string
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
}

// Validate checks the decoded config and returns every problem found, each an
// *Error, joined with errors.Join.
func (c *Config) Validate() error {
	return errors.Join(c.nameByID(c.validate())...)
}

// validate returns every problem found, with doors and drivers named by
// their index.
func (c *Config) validate() []error {
	v := &validator{file: c.File}
	if v.file == "" {
		v.file = "config"
	}
	v.id("bridge.id", c.Bridge.ID)
	c.validateStateDir(v)
	c.validateCodes(v)
	c.validateMQTT(v)
	c.validateWatchdog(v)
	c.validateAlarms(v)
	driverIDs := c.validateDrivers(v)
	lines := c.validateDoors(v, driverIDs)
	c.validatePower(v, driverIDs, lines)
	c.validateAudit(v)
	c.validateHTTP(v)
	return v.errs
}

// nameByID names doors and drivers by their id in errors' keys and messages
// ("doors.front.relay", not "doors[2].relay"): an index is hard to count in
// a long file. An entry without a valid, unique id keeps its index.
func (c *Config) nameByID(errs []error) []error {
	var pairs []string
	byID := func(list string, ids []string) {
		count := map[string]int{}
		for _, id := range ids {
			count[id]++
		}
		for i, id := range ids {
			if count[id] == 1 && validID(id) {
				pairs = append(pairs, fmt.Sprintf("%s[%d]", list, i), list+"."+id)
			}
		}
	}
	var ids []string
	for _, d := range c.Doors {
		ids = append(ids, d.ID)
	}
	byID("doors", ids)
	ids = nil
	for _, d := range c.Drivers {
		ids = append(ids, d.ID)
	}
	byID("drivers", ids)
	r := strings.NewReplacer(pairs...)
	for _, e := range errs {
		if ce, ok := e.(*Error); ok {
			ce.Key, ce.Msg = r.Replace(ce.Key), r.Replace(ce.Msg)
		}
	}
	return errs
}

type validator struct {
	file  string
	errs  []error
	specs map[int]decodedSpec // by index in drivers: decoded once, asked per line
}

// decodedSpec is a driver's options as its factory decoded them.
type decodedSpec struct {
	spec any
	err  error
}

// spec decodes a driver's options once per validation: each door's lines
// ask their driver's spec, and a decode per line made loading a 256-door
// config take milliseconds before the relays' off writes.
func (v *validator) spec(i int, d Driver) (any, error) {
	if r, ok := v.specs[i]; ok {
		return r.spec, r.err
	}
	spec, err := driverRegistry.Decode(d.Type, d.Options)
	if v.specs == nil {
		v.specs = map[int]decodedSpec{}
	}
	v.specs[i] = decodedSpec{spec, err}
	return spec, err
}

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) id(key, s string) {
	if !validID(s) {
		v.add(key, "%q is not a valid id (use lower-case letters, digits, _ and -)", s)
	}
}

// publishTopic checks a topic the bridge publishes to (or builds topics from).
func (v *validator) publishTopic(key, t string) {
	switch {
	case t == "":
		v.add(key, "must not be empty")
	case strings.ContainsAny(t, "+#"):
		v.add(key, "%q holds a wildcard (+ or #); the bridge publishes to it, so it must be a plain topic", t)
	case strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/"):
		v.add(key, "%q must not start or end with /", t)
	}
}

func (c *Config) validateWatchdog(v *validator) {
	w := c.Watchdog
	if w.HeartbeatInterval <= 0 {
		v.add("watchdog.heartbeat_interval", "%v must be positive", w.HeartbeatInterval)
	}
	if w.HeartbeatTimeout <= w.HeartbeatInterval {
		v.add("watchdog.heartbeat_timeout", "%v must be larger than watchdog.heartbeat_interval (%v)", w.HeartbeatTimeout, w.HeartbeatInterval)
	}
	if w.HeartbeatTimeout > 10e9 {
		v.add("watchdog.heartbeat_timeout", "%v is over 10s; a silent broker must release doors well inside NFPA 72's 10 s", w.HeartbeatTimeout)
	}
	if w.RelockDelay < 0 || w.RelockDelay > 600e9 {
		v.add("watchdog.relock_delay", "%v must be between 0s and 10m", w.RelockDelay)
	}
	if w.LoopTimeout < 100e6 || w.LoopTimeout > 2e9 {
		v.add("watchdog.loop_timeout", "%v must be between 100ms and 2s", w.LoopTimeout)
	}
	if w.Device != "" && !strings.HasPrefix(w.Device, "/") {
		v.add("watchdog.device", "%q must be an absolute path (e.g. /dev/watchdog), or empty for none", w.Device)
	}
}

func (c *Config) validateCodes(v *validator) {
	if c.Codes.MaxFailures < 1 {
		v.add("codes.max_failures", "%d must be at least 1 (the number of wrong codes in a row that locks a keypad out)", c.Codes.MaxFailures)
	}
	if c.Codes.Lockout < 0 {
		v.add("codes.lockout", "%v must not be negative (0s turns the lockout off)", c.Codes.Lockout)
	}
	if c.Codes.MaxLockout < 0 {
		v.add("codes.max_lockout", "%v must not be negative (the longest a repeated lockout lasts; 0s: no escalation beyond codes.lockout)", c.Codes.MaxLockout)
	}
	v.codeHash("bridge.code_hash", c.Bridge.CodeHash)
	for i, d := range c.Doors {
		v.codeHash(fmt.Sprintf("doors[%d].code_hash", i), d.CodeHash)
	}
}

// codeHash checks that a code_hash is a bcrypt hash: the code itself must
// never sit in a config file.
func (v *validator) codeHash(key, h string) {
	if h == "" {
		return
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		v.add(key, "is not a bcrypt hash (write the hash, never the code: echo 1234 | doorbridge hash-code)")
	}
}

func (c *Config) validateDrivers(v *validator) map[string]bool {
	ids := map[string]bool{}
	for i, d := range c.Drivers {
		key := fmt.Sprintf("drivers[%d]", i)
		v.id(key+".id", d.ID)
		if ids[d.ID] {
			v.add(key+".id", "duplicate driver id %q", d.ID)
		}
		ids[d.ID] = true
		if !slices.Contains(driverRegistry.Types(), d.Type) {
			v.add(key+".type", "unknown driver type %q (known: %s)", d.Type, strings.Join(driverRegistry.Types(), ", "))
		} else if _, err := driverRegistry.Decode(d.Type, d.Options); err != nil {
			v.driverError(key, d, err)
		}
	}
	return ids
}

// validateDoors checks every door and returns the driver lines they use
// ("driver/channel" -> the key that uses it).
func (c *Config) validateDoors(v *validator, driverIDs map[string]bool) map[string]string {
	if len(c.Doors) == 0 {
		v.add("doors", "no doors configured")
	}
	seen := map[string]bool{}
	channels := map[string]string{} // driver/channel -> key that uses it
	for i, d := range c.Doors {
		key := fmt.Sprintf("doors[%d]", i)
		v.id(key+".id", d.ID)
		c.validateDoorIDNotReserved(v, key+".id", d.ID)
		if seen[d.ID] {
			v.add(key+".id", "duplicate door id %q", d.ID)
		}
		seen[d.ID] = true
		if d.FailMode == "" {
			v.add(key+".fail_mode", "is required: fail_safe (a maglock: unlocked without power) or fail_secure (a strike: locked without power)")
		} else if d.FailMode != FailSafe && d.FailMode != FailSecure {
			v.add(key+".fail_mode", "%q is not a fail mode (valid: fail_safe, fail_secure)", d.FailMode)
		}
		if d.Relay.Driver == "" && d.Relay.Channel == "" {
			v.add(key+".relay", "is required: the line that powers the lock, e.g. relay: {driver: %s, channel: \"0\"}", c.firstDriverID())
		} else {
			c.validateLine(v, key+".relay", d.Relay, driverIDs, channels)
		}
		if d.UnlockTime < MinUnlockTime || d.UnlockTime > MaxUnlockTime {
			v.add(key+".unlock_time", "%v is outside 1s–30s (a momentary unlock is always bounded)", d.UnlockTime)
		}
		if d.Egress && d.FailMode == FailSecure && !d.MechanicalEgress {
			v.add(key+".mechanical_egress", "door %q is an egress door and fail_secure: set mechanical_egress: true only if a handle or crash bar always opens it from inside, otherwise use fail_mode: fail_safe (it could trap people)", d.ID)
		}
		validateArea(v, key+".area", d.Area)
		c.validateDoorInputs(v, key, d, driverIDs, channels)
	}
	return channels
}

// MaxAreaLen bounds a door's area, in characters: an area is a room's
// name, and HA shows it in lists.
const MaxAreaLen = 100

// validateArea checks the text HA gets as the device's suggested_area; it
// is free text, but a control character would end up in HA's area
// registry and UI.
func validateArea(v *validator, key, area string) {
	if n := utf8.RuneCountInString(area); n > MaxAreaLen {
		v.add(key, "is %d characters long: an area name has at most %d (e.g. Hallway)", n, MaxAreaLen)
	} else if !utf8.ValidString(area) {
		v.add(key, "%q is not valid UTF-8: an area name is plain text (e.g. Hallway)", area)
	} else if strings.IndexFunc(area, unicode.IsControl) >= 0 {
		v.add(key, "%q holds a control character: an area name is plain text on one line (e.g. Hallway)", area)
	}
}

// validateDoorInputs checks a door's optional inputs and their timings. An
// input line is a line of its driver like a relay: it may not share a
// channel with an output or another input.
func (c *Config) validateDoorInputs(v *validator, key string, d Door, driverIDs map[string]bool, used map[string]string) {
	for _, in := range d.Inputs() {
		if in.Line != nil {
			c.validateLine(v, key+"."+in.Name, *in.Line, driverIDs, used)
		}
	}
	if d.LockSense != nil && d.FailMode == FailSecure {
		v.add(key+"."+InputLockSense, "door %q is fail_secure: only a fail_safe door's lock sense (a maglock's bond sensor) is supervised; a strike's latch monitor says nothing about its release", d.ID)
	}
	// Zero is "unset" (a config built in code rather than loaded): the
	// default applies, see EffectiveRexTime.
	if d.RexTime != 0 && (d.RexTime < MinRexTime || d.RexTime > MaxRexTime) {
		v.add(key+".rex_time", "%v is outside 30s–10m (an exit button releases a fail-safe door for at least 30 s, NFPA 101 7.2.1.6.2)", d.RexTime)
	}
	if d.HeldOpenTime != 0 && (d.HeldOpenTime < MinHeldOpenTime || d.HeldOpenTime > MaxHeldOpenTime) {
		v.add(key+".held_open_time", "%v is outside 10s–10m (how long a door may stand open before it is reported held open)", d.HeldOpenTime)
	}
}

func (c *Config) validateLine(v *validator, key string, l Line, driverIDs map[string]bool, used map[string]string) {
	if !driverIDs[l.Driver] {
		known := make([]string, 0, len(driverIDs))
		for _, d := range c.Drivers {
			known = append(known, d.ID)
		}
		switch {
		case l.Driver == "" && len(known) > 0:
			v.add(key+".driver", "is required: the id of the driver the line is on (configured: %s)", strings.Join(known, ", "))
		case len(known) == 0:
			v.add(key+".driver", "unknown driver %q (no drivers are configured)", l.Driver)
		default:
			v.add(key+".driver", "unknown driver %q (configured: %s)", l.Driver, strings.Join(known, ", "))
		}
		return
	}
	if l.Channel == "" {
		v.add(key+".channel", "must not be empty")
		return
	}
	c.validatePull(v, key, l)
	if err := c.checkChannel(v, l, strings.HasSuffix(key, ".relay")); err != nil {
		v.add(key+".channel", "%v", err)
		return
	}
	ch := l.Name()
	if other, dup := used[ch]; dup {
		v.add(key+".channel", "channel %q of driver %q is already used by %s", l.Channel, l.Driver, other)
		return
	}
	used[ch] = key
}

// validatePull checks an input's pull; a relay has none (its off level
// comes with its request, and a pull would not hold it after a release).
func (c *Config) validatePull(v *validator, key string, l Line) {
	switch {
	case l.Pull == "":
	case strings.HasSuffix(key, ".relay"):
		v.add(key+".pull", "%q: pull applies to input lines only (contact, rex, lock_sense, a power input); leave it out of a relay", l.Pull)
	case l.Pull != "up" && l.Pull != "down" && l.Pull != "none":
		v.add(key+".pull", "%q is not a pull: want up, down or none (leave it out to keep the pin's own bias)", l.Pull)
	default:
		typ, pulls := c.driverPulls(v, l.Driver)
		if pulls != nil && !slices.Contains(pulls, l.Pull) {
			v.add(key+".pull", "%q: an input of driver %q (%s) cannot be pulled so: want %s, or leave the key out", l.Pull, l.Driver, typ, strings.Join(pulls, " or "))
		}
	}
}

// driverPulls returns the type of a configured driver and the pulls its
// inputs take (drivers.PullChecker, asked through pullChecker); nil
// pulls: any.
func (c *Config) driverPulls(v *validator, id string) (string, []string) {
	for i, d := range c.Drivers {
		if d.ID != id {
			continue
		}
		spec, err := v.spec(i, d)
		if err != nil {
			return d.Type, nil // reported with the driver
		}
		if pc, ok := spec.(pullChecker); ok {
			return d.Type, pc.Pulls()
		}
		return d.Type, nil
	}
	return "", nil
}

// checkChannel asks the line's driver, without the hardware, whether the
// channel can exist (drivers.ChannelChecker, asked through channelChecker).
func (c *Config) checkChannel(v *validator, l Line, output bool) error {
	for i, d := range c.Drivers {
		if d.ID != l.Driver {
			continue
		}
		spec, err := v.spec(i, d)
		if err != nil {
			return nil // reported with the driver
		}
		if cc, ok := spec.(channelChecker); ok {
			return cc.CheckChannel(l.Channel, output)
		}
	}
	return nil
}

// driverError reports an error from a driver's factory. Decoding errors
// (unknown keys, bad durations) are rewritten per key like the rest of the
// file; the driver's option type, which lists its valid keys, is only known
// from a successful decode, so it is tried once more without the unknown keys.
func (v *validator) driverError(key string, d Driver, err error) {
	var me mapstructure.Error
	if !errors.As(err, &me) {
		v.add(key, "%v", err)
		return
	}
	var typ reflect.Type
	if unknown := unknownKeys(err, d.Options); len(unknown) > 0 {
		// A factory that also fails on a value (or a missing required key)
		// yields no type: the message then lacks the list of valid keys.
		opts := maps.Clone(d.Options)
		for _, k := range unknown {
			delete(opts, k)
		}
		if spec, err := driverRegistry.Decode(d.Type, opts); err == nil {
			typ = reflect.TypeOf(spec)
		}
	}
	for _, e := range decodeErrors(err, v.file, key, d.Options, typ, []string{"id", "type"}) {
		if e, ok := e.(*Error); ok && strings.HasPrefix(e.Msg, "unknown key") {
			e.Msg = strings.Replace(e.Msg, "unknown key", fmt.Sprintf("unknown key for driver type %q", d.Type), 1)
		}
		v.errs = append(v.errs, e)
	}
}

// firstDriverID names a configured driver for an example, or a placeholder.
func (c *Config) firstDriverID() string {
	if len(c.Drivers) > 0 && c.Drivers[0].ID != "" {
		return c.Drivers[0].ID
	}
	return "DRIVER"
}
