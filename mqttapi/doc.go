// Package mqttapi is doorbridge's MQTT contract: the topics under
// B/N (mqtt.base_topic/bridge.id), the payloads on them, the causes and the
// event types. Users' automations and Home Assistant's entities depend on
// every name here: keep them exactly, add freely.
//
// The bridge publishes and accepts these words; discovery announces them to
// Home Assistant; config reserves the bridge's topic leaves so that no door
// id can share them. It imports only policy, whose hazard and cause names
// are the causes published.
package mqttapi
