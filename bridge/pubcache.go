package bridge

import "encoding/json"

// pubCache keeps what every evaluation rebuilds but that seldom changes.
// Marshalling every door's attributes and listing hazard names for the HTTP
// snapshot on each 100 ms tick cost more than the rest of the loop together
// (with 256 doors, half a millisecond and 160 KB of garbage per tick). Only
// the loop goroutine uses it.
type pubCache struct {
	names map[Hazards][]string // interned hazard names: shared, never modified
	attrs map[*door]cachedAttrs
	hz    Hazards
	hzSet bool
	hzRaw string
}

type cachedAttrs struct {
	a    doorAttributes
	json string
}

// hazardNames returns s.Names(), the same slice for the same set: callers
// must not modify it.
func (c *pubCache) hazardNames(s Hazards) []string {
	if n, ok := c.names[s]; ok {
		return n
	}
	if c.names == nil {
		c.names = map[Hazards][]string{}
	}
	n := s.Names()
	c.names[s] = n
	return n
}

// attrsJSON returns the JSON of d's attributes a, marshalled again only when
// they changed.
func (c *pubCache) attrsJSON(d *door, a doorAttributes) string {
	if old, ok := c.attrs[d]; ok && old.a.same(a) {
		return old.json
	}
	b, _ := json.Marshal(a)
	if c.attrs == nil {
		c.attrs = map[*door]cachedAttrs{}
	}
	js := string(b)
	c.attrs[d] = cachedAttrs{a: a, json: js}
	return js
}

// hazardsJSON returns the JSON list of s's names.
func (c *pubCache) hazardsJSON(s Hazards) string {
	if !c.hzSet || c.hz != s {
		b, _ := json.Marshal(s.Names())
		c.hz, c.hzSet, c.hzRaw = s, true, string(b)
	}
	return c.hzRaw
}

// hazardList is a set of hazards that marshals as the list of their names,
// like Hazards.Names(), but keeps doorAttributes comparable.
type hazardList Hazards

// MarshalJSON implements json.Marshaler.
func (h hazardList) MarshalJSON() ([]byte, error) { return json.Marshal(Hazards(h).Names()) }

// same reports whether a and o marshal alike. The pointers are compared by
// what they point to: door.energized and door.lockedKnown return a new
// pointer on every call, so == would never hit and every tick would
// marshal every door again.
func (a doorAttributes) same(o doorAttributes) bool {
	if !samePtr(a.Energized, o.Energized) || !samePtr(a.Locked, o.Locked) {
		return false
	}
	a.Energized, a.Locked, o.Energized, o.Locked = nil, nil, nil, nil
	return a == o
}

// doorPubKey is everything a door's retained state, cause, energized and
// attributes topics are made of, comparable: equal keys publish equal
// payloads. (The fail mode and the egress flags are the door's config.)
type doorPubKey struct {
	state, cause, fault string
	power, known        bool
	locked              bool
	hz                  Hazards
}

func (d *door) pubKey(hz Hazards) doorPubKey {
	power, known := d.powerKnown()
	return doorPubKey{state: d.state(), cause: d.cause, fault: errString(d.faultErr),
		power: power, known: known, locked: d.locked(), hz: hz}
}
