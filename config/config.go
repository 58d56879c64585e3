// Package config loads, defaults and validates doorbridge's configuration.
//
// The file is YAML read through koanf; every key may be overridden from the
// environment as DOORBRIDGE_<SECTION>__<KEY>. Unknown keys are errors: a typo
// in a safety configuration must not pass silently.
package config

import (
	"fmt"
	"time"
)

// Fail modes of a door.
const (
	FailSafe   = "fail_safe"   // maglock: power on = locked, off = unlocked
	FailSecure = "fail_secure" // electric strike: power on = unlocked, off = locked
)

// Config is the whole configuration of one bridge.
type Config struct {
	// envWarnings: DOORBRIDGE_ variables that set nothing (see Load).
	envWarnings    []string
	Bridge         Bridge         `koanf:"bridge"`
	MQTT           MQTT           `koanf:"mqtt"`
	EmbeddedBroker EmbeddedBroker `koanf:"embedded_broker"`
	HTTP           HTTP           `koanf:"http"`
	Watchdog       Watchdog       `koanf:"watchdog"`
	Alarms         []Alarm        `koanf:"alarms"`
	Drivers        []Driver       `koanf:"drivers"`
	Doors          []Door         `koanf:"doors"`
	Codes          Codes          `koanf:"codes"`
	Power          []PowerSource  `koanf:"power"`
	Audit          Audit          `koanf:"audit"`

	// File is the path the config was loaded from ("" for defaults only).
	File string `koanf:"-"`
}

// Bridge identifies this bridge.
type Bridge struct {
	ID   string `koanf:"id"`
	Name string `koanf:"name"`
	// StateDir keeps the state that must survive a restart and a power cut
	// (the fire release latch, lockdown, the battery budget, code lockouts,
	// the last drill). Empty in the file, Load sets DefaultStateDir; it is
	// empty only in a Config built in code (tests), where nothing persists.
	StateDir string `koanf:"state_dir"`
	// CodeHash is the default bcrypt hash of the code (PIN) that UNLOCK and
	// OPEN require on doors without a code_hash of their own ("" = no code).
	CodeHash string `koanf:"code_hash"`
}

// Codes limits guessing of door codes.
type Codes struct {
	// MaxFailures wrong codes in a row lock a code out for Lockout. Doors
	// that share a code (bridge.code_hash) share the count.
	MaxFailures int           `koanf:"max_failures"`
	Lockout     time.Duration `koanf:"lockout"`
	// MaxLockout caps the escalation: each lockout since the last right
	// code lasts twice as long as the one before, up to this (never less
	// than Lockout).
	MaxLockout time.Duration `koanf:"max_lockout"`
}

// MQTT is the broker connection.
type MQTT struct {
	URL string `koanf:"url"`
	// URLs lists the brokers of a pair or cluster, tried in order (instead
	// of url, not with it).
	URLs            []string `koanf:"urls"`
	Username        string   `koanf:"username"`
	Password        string   `koanf:"password"`
	PasswordFile    string   `koanf:"password_file"`
	ClientID        string   `koanf:"client_id"`
	BaseTopic       string   `koanf:"base_topic"`
	DiscoveryPrefix string   `koanf:"discovery_prefix"`
	// BirthTopic is Home Assistant's MQTT birth topic (its own setting in
	// the MQTT integration, not derived from the discovery prefix): on its
	// "online" the bridge sends discovery and its state again.
	BirthTopic string `koanf:"birth_topic"`

	// TLS, for ssl:// and mqtts:// brokers only.
	CAFile     string `koanf:"ca_file"`     // CA bundle the broker's certificate must chain to ("" = system roots)
	CertFile   string `koanf:"cert_file"`   // client certificate (mutual TLS), with key_file
	KeyFile    string `koanf:"key_file"`    // its private key
	ServerName string `koanf:"server_name"` // name the broker's certificate must hold ("" = the URL's host)
	// InsecureSkipVerify accepts any broker certificate: anyone on the path
	// can then pose as the broker. Only for commissioning; logged loudly.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// EmbeddedBroker is the in-process broker started when mqtt.url is empty.
// Without users it has no authentication and listens on loopback only.
type EmbeddedBroker struct {
	// Listen is the plain TCP listener ("" = none: socket only).
	Listen string `koanf:"listen"`
	// Socket, when set, adds a Unix-socket listener at this path, mode
	// 0660: only the bridge's user and group can connect. Without listen,
	// it is the only way in, and the bridge connects through it too.
	Socket string `koanf:"socket"`
	// TLSListen, when set, adds a TLS listener with cert_file and key_file.
	TLSListen string `koanf:"tls_listen"`
	CertFile  string `koanf:"cert_file"`
	KeyFile   string `koanf:"key_file"`
	// Users turns authentication on: every client must log in as one of
	// them, and may then do only what its acl entry allows.
	Users []BrokerUser `koanf:"users"`
	ACL   []BrokerACL  `koanf:"acl"`
}

// BrokerUser is one login of the embedded broker.
type BrokerUser struct {
	Username     string `koanf:"username"`
	PasswordHash string `koanf:"password_hash"` // bcrypt
	PasswordFile string `koanf:"password_file"` // or a file holding the password
}

// BrokerACL is what one user of the embedded broker may do: topic patterns
// (MQTT filters, + and #) it may publish to and subscribe to.
type BrokerACL struct {
	Username  string   `koanf:"username"`
	Publish   []string `koanf:"publish"`
	Subscribe []string `koanf:"subscribe"`
}

// HTTP is the metrics, health and API listener.
type HTTP struct {
	Listen string `koanf:"listen"`
	// Console serves the web console at / (console/): off, read_only (the
	// status and events, no actions, no login) or on (actions after a
	// login with console_password_hash).
	Console             string `koanf:"console"`
	ConsolePasswordHash string `koanf:"console_password_hash"` // bcrypt (doorbridge hash-password)
	// ConsoleViewWithoutLogin lets anyone who reaches the listener see the
	// status and events of a console that is on; actions still need the login.
	ConsoleViewWithoutLogin bool `koanf:"console_view_without_login"`
	// ConsoleURL is the address people open the console at, for Home
	// Assistant's link to it ("": http(s)://<listen>/ when listen names a host).
	ConsoleURL string `koanf:"console_url"`
	// TLSCertFile and TLSKeyFile serve the listener over HTTPS.
	TLSCertFile string `koanf:"tls_cert_file"`
	TLSKeyFile  string `koanf:"tls_key_file"`
}

// Watchdog holds the supervision timings.
type Watchdog struct {
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	HeartbeatTimeout  time.Duration `koanf:"heartbeat_timeout"`
	RelockDelay       time.Duration `koanf:"relock_delay"`
	AlarmLatch        bool          `koanf:"alarm_latch"`
	// LoopTimeout is how long the control loop may go without checking in
	// before the in-process watchdog forces every relay off.
	LoopTimeout time.Duration `koanf:"loop_timeout"`
	// Device is a Linux watchdog device (e.g. /dev/watchdog) pinged while
	// the control loop is healthy; "" (the default) leaves it alone.
	Device string `koanf:"device"`
}

// Driver is one driver config entry; Options holds the type's own keys,
// decoded and validated by the driver's factory.
type Driver struct {
	ID      string         `koanf:"id"`
	Type    string         `koanf:"type"`
	Options map[string]any `koanf:",remain"`
}

// Line names one line on a driver.
type Line struct {
	Driver    string `koanf:"driver"`
	Channel   string `koanf:"channel"`
	ActiveLow bool   `koanf:"active_low"`
	// Pull is an input's bias, set on the line request: "up", "down",
	// "none" (bias disabled) or "" (left as the pin has it). Drivers without
	// pulls ignore it.
	Pull string `koanf:"pull"`
}

// Name names the line in messages and logs: driver/channel.
func (l Line) Name() string { return l.Driver + "/" + l.Channel }

// Label is Name for an installer: it says when the line is active low.
func (l Line) Label() string {
	if l.ActiveLow {
		return l.Name() + " (active low)"
	}
	return l.Name()
}

// Door is one door and its lock.
type Door struct {
	ID   string `koanf:"id"`
	Name string `koanf:"name"`
	// Area is the Home Assistant area suggested for the door's device
	// (free text, trimmed on load); HA uses it only when it first adds the
	// device, so a later change here does not move a device already placed.
	Area             string        `koanf:"area"`
	FailMode         string        `koanf:"fail_mode"`
	Relay            Line          `koanf:"relay"`
	UnlockTime       time.Duration `koanf:"unlock_time"`
	Egress           bool          `koanf:"egress"`
	MechanicalEgress bool          `koanf:"mechanical_egress"`
	// HardwiredRelease declares that a fire-alarm relay and an exit button
	// cut this lock's power in hardware, without the bridge (the first line
	// of defence). check-config warns about egress doors without it.
	HardwiredRelease bool `koanf:"hardwired_release"`
	// PowerRelease (default true) releases the door when mains power is
	// lost. Only a fail-safe door on a lock power supply with its own
	// battery may turn it off; it is then released after at most 10 minutes
	// on battery all the same.
	PowerRelease *bool `koanf:"power_release"`
	// CodeHash is the bcrypt hash of the code UNLOCK and OPEN require; ""
	// falls back to bridge.code_hash.
	CodeHash string `koanf:"code_hash"`

	// Inputs, all optional. A high level means active (door open, button
	// pressed, lock sensed locked) unless the line's active_low is set.
	//
	// Contact is the door position switch: forced and held-open doors, the
	// OPEN state, and the early relock of a momentary OPEN.
	Contact *Line `koanf:"contact"`
	// Rex is the request-to-exit button or sensor: it releases a fail-safe
	// door for RexTime, locally, with or without a broker (R11), unlocks a
	// fail-secure door for UnlockTime when no hazard is active, and shunts
	// the forced-door alarm.
	Rex *Line `koanf:"rex"`
	// LockSense is a maglock's bond sensor: locked for more than 2 s after
	// lock power went off is a release failure (R16).
	LockSense *Line `koanf:"lock_sense"`
	// RexTime is how long a REX keeps a fail-safe door released after the
	// button lets go (default and minimum 30 s, NFPA 101 7.2.1.6.2).
	RexTime time.Duration `koanf:"rex_time"`
	// HeldOpenTime is how long the door may stand open before it is
	// reported held open (default 30 s).
	HeldOpenTime time.Duration `koanf:"held_open_time"`

	// unlockTimeSet: unlock_time was written in the file (0s then is an
	// error, not the default).
	unlockTimeSet bool
}

// EffectiveCodeHash returns the hash a door's UNLOCK and OPEN must match, or
// "" when the door needs no code.
func (c *Config) EffectiveCodeHash(d *Door) string {
	if d.CodeHash != "" {
		return d.CodeHash
	}
	return c.Bridge.CodeHash
}

// Limits on door timings.
const (
	MinUnlockTime = 1 * time.Second
	MaxUnlockTime = 30 * time.Second

	DefaultRexTime = 30 * time.Second
	MinRexTime     = 30 * time.Second // NFPA 101 7.2.1.6.2: PUSH TO EXIT unlocks for at least 30 s
	MaxRexTime     = 10 * time.Minute

	DefaultHeldOpenTime = 30 * time.Second
	MinHeldOpenTime     = 10 * time.Second
	MaxHeldOpenTime     = 10 * time.Minute

	// LockSenseDelay is how long a fail-safe door's lock sense may still
	// report locked after its power went off before that is a release
	// failure (R16).
	LockSenseDelay = 2 * time.Second
)

// Default returns the configuration used where the file is silent. It is the
// one source of defaults; the README's reference table is written from it.
func Default() Config {
	return Config{
		Bridge: Bridge{ID: "home", Name: "Home"},
		MQTT: MQTT{
			BaseTopic:       "doorbridge",
			DiscoveryPrefix: "homeassistant",
			BirthTopic:      DefaultBirthTopic,
		},
		EmbeddedBroker: EmbeddedBroker{Listen: "127.0.0.1:1883"},
		HTTP:           HTTP{Listen: "127.0.0.1:9180", Console: ConsoleOff},
		Watchdog: Watchdog{
			HeartbeatInterval: 1 * time.Second,
			HeartbeatTimeout:  3 * time.Second,
			RelockDelay:       5 * time.Second,
			AlarmLatch:        true,
			LoopTimeout:       2 * time.Second,
		},
		Codes: Codes{MaxFailures: 5, Lockout: 60 * time.Second, MaxLockout: time.Hour},
		Audit: DefaultAudit(),
	}
}

// DefaultAlarm is the alarm entry used when alarms is empty.
func DefaultAlarm(baseTopic string) Alarm {
	return Alarm{Topic: baseTopic + "/alarm", PayloadOn: "ON", PayloadOff: "OFF"}
}

// DefaultUnlockTime is the length of a momentary OPEN when unlock_time is unset.
const DefaultUnlockTime = 5 * time.Second

// ClientID returns the MQTT client id, defaulted from the bridge id.
func (c *Config) ClientID() string {
	if c.MQTT.ClientID != "" {
		return c.MQTT.ClientID
	}
	return "doorbridge-" + c.Bridge.ID
}

// Door returns the door with id, or nil.
func (c *Config) Door(id string) *Door {
	for i := range c.Doors {
		if c.Doors[i].ID == id {
			return &c.Doors[i]
		}
	}
	return nil
}

// MQTTPassword returns mqtt.password, or the content of mqtt.password_file
// (without its trailing newline) when that is set.
func (c *Config) MQTTPassword() (string, error) {
	if c.MQTT.PasswordFile == "" {
		return c.MQTT.Password, nil
	}
	p, err := readSecret(c.MQTT.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("mqtt.password_file: %w", err)
	}
	return p, nil
}

// EffectiveRexTime is rex_time, or its default when unset.
func (d *Door) EffectiveRexTime() time.Duration {
	if d.RexTime == 0 {
		return DefaultRexTime
	}
	return d.RexTime
}

// EffectiveHeldOpenTime is held_open_time, or its default when unset.
func (d *Door) EffectiveHeldOpenTime() time.Duration {
	if d.HeldOpenTime == 0 {
		return DefaultHeldOpenTime
	}
	return d.HeldOpenTime
}

// ReleasesOnPowerLoss reports whether the door is released as soon as mains
// power is lost (power_release, default true).
func (d *Door) ReleasesOnPowerLoss() bool { return d.PowerRelease == nil || *d.PowerRelease }
