// Package mqttclient connects to MQTT brokers: which brokers to dial
// (DialURLs), paho options with TLS and a dialer of its own (Options)
// that sees every failed attempt and explains it in plain words
// (ExplainConnectError, logged once per reason by a Reporter), and the
// connection (Conn) that reports its own loss to whoever tracks it.
// Under paho, on the read side, an oversized PUBLISH is replaced by an
// empty stand-in (bigfilter.go).
//
// The bridge and the command-line tools connect through it; the embedded
// broker lets this process's clients in through RegisterInproc.
package mqttclient
