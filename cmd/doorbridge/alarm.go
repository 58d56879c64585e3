package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
)

// cmdAlarm publishes the fire alarm: a drill and commissioning tool.
//
//	on     publishes payload_on, retained, to the first alarm topic
//	off    publishes payload_off, retained, to the first alarm topic
//	reset  publishes RESET to B/N/alarm/reset (releases the latch)
func cmdAlarm(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "on" && args[0] != "off" && args[0] != "reset" {
		fmt.Fprintln(stderr, "usage: doorbridge alarm on|off|reset [-c FILE] [-topic TOPIC]")
		return 2
	}
	action := args[0]
	fs := flag.NewFlagSet("alarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	topicFlag := fs.String("topic", "", "alarm topic (default: the first entry of alarms)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the broker")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.Load(config.Path(*file))
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: %v\n", err)
		return 1
	}
	alarm := cfg.Alarms[0]
	var topic, payload string
	retained := true
	switch action {
	case "on":
		topic, payload = alarm.Topic, alarm.PayloadOn
	case "off":
		topic, payload = alarm.Topic, alarm.PayloadOff
	case "reset":
		topic, payload, retained = bridge.NewTopics(cfg).AlarmReset, "RESET", false
	}
	if *topicFlag != "" && action != "reset" {
		topic = *topicFlag
	}
	if err := publishOnce(cfg, topic, payload, retained, *timeout); err != nil {
		fmt.Fprintf(stderr, "doorbridge: alarm %s: %v\n", action, err)
		return 1
	}
	fmt.Fprintf(stdout, "published %q to %s (retained=%v)\n", payload, topic, retained)
	return 0
}

// brokerURL is the configured broker, or the embedded broker's address.
func brokerURL(cfg *config.Config) string {
	if cfg.MQTT.URL != "" {
		return cfg.MQTT.URL
	}
	return "tcp://" + cfg.EmbeddedBroker.Listen
}

func publishOnce(cfg *config.Config, topic, payload string, retained bool, timeout time.Duration) error {
	password, err := cfg.MQTTPassword()
	if err != nil {
		return err
	}
	opts := paho.NewClientOptions().
		AddBroker(brokerURL(cfg)).
		SetClientID(fmt.Sprintf("%s-cli-%d", cfg.ClientID(), os.Getpid())).
		SetUsername(cfg.MQTT.Username).
		SetPassword(password).
		SetCleanSession(true).
		SetConnectTimeout(timeout).
		SetAutoReconnect(false)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(timeout) {
		return fmt.Errorf("connect to %s: no answer within %v", brokerURL(cfg), timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect to %s: %w", brokerURL(cfg), err)
	}
	defer c.Disconnect(250)
	pt := c.Publish(topic, 1, retained, payload)
	if !pt.WaitTimeout(timeout) {
		return errors.New("publish: no acknowledgement")
	}
	return pt.Error()
}
