package discovery

// The JSON shapes of a device-discovery payload. Field order is the key
// order on the wire. HA rejects the whole payload for an unknown key in the
// root, device, origin or an availability entry, so those structs hold only
// keys HA's schemas.py allows; unknown keys inside a component would merely
// be dropped, but there are none either.

type payload struct {
	Device device `json:"device"`
	Origin origin `json:"origin"`
	// Availability is a shared root key: HA copies it into every component
	// that does not set its own.
	Availability []availability       `json:"availability"`
	Components   map[string]component `json:"components"`
}

type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name,omitempty"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
	// SuggestedArea is a door's config area: HA places the device in that
	// area (creating it if needed) only when it first adds the device.
	SuggestedArea string `json:"suggested_area,omitempty"`
	ViaDevice     string `json:"via_device,omitempty"`
	// ConfigurationURL links the device page to the web console, when on.
	ConfigurationURL string `json:"configuration_url,omitempty"`
}

type origin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url,omitempty"`
}

type availability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

// component is the union of the keys doorbridge uses on any platform.
type component struct {
	Platform string `json:"p"`
	// Name nil is written as null: the entity then takes the device's name.
	Name            *string `json:"name"`
	UniqueID        string  `json:"unique_id"`
	DefaultEntityID string  `json:"default_entity_id"`
	DeviceClass     string  `json:"device_class,omitempty"`
	EntityCategory  string  `json:"entity_category,omitempty"`
	Icon            string  `json:"icon,omitempty"`

	StateTopic          string `json:"state_topic,omitempty"`
	ValueTemplate       string `json:"value_template,omitempty"`
	JSONAttributesTopic string `json:"json_attributes_topic,omitempty"`
	CommandTopic        string `json:"command_topic,omitempty"`
	CommandTemplate     string `json:"command_template,omitempty"`
	CodeFormat          string `json:"code_format,omitempty"`

	PayloadLock   string `json:"payload_lock,omitempty"`
	PayloadUnlock string `json:"payload_unlock,omitempty"`
	PayloadOpen   string `json:"payload_open,omitempty"`
	StateLocked   string `json:"state_locked,omitempty"`
	StateUnlocked string `json:"state_unlocked,omitempty"`
	StateOpen     string `json:"state_open,omitempty"`
	StateJammed   string `json:"state_jammed,omitempty"`
	PayloadOn     string `json:"payload_on,omitempty"`
	PayloadOff    string `json:"payload_off,omitempty"`
	PayloadPress  string `json:"payload_press,omitempty"`

	Options    []string `json:"options,omitempty"`
	EventTypes []string `json:"event_types,omitempty"`

	QoS int `json:"qos"`
	// Retain is set (to false) on every component that publishes commands:
	// a retained command would be replayed to the bridge on every reconnect.
	Retain *bool `json:"retain,omitempty"`
}

func name(s string) *string { return &s }

var noRetain = new(bool)
