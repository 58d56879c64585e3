package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/secretfile"
)

// cmdAlarm publishes the fire alarm: a drill and commissioning tool.
//
//	on     publishes payload_on, retained, to the first plain alarm topic
//	off    publishes payload_off, retained, to the first plain alarm topic
//	reset  publishes RESET to B/N/alarm/reset (releases the latch)
func cmdAlarm(args []string, stdout, stderr io.Writer) int {
	const synopsis = "alarm on|off|reset [-c FILE] [-topic TOPIC] [-username USER -password-file FILE] [-timeout 5s]"
	action := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	// Named with its action, so that a stray config path gets the whole
	// command back: doorbridge alarm on -c site.yaml.
	fs := flag.NewFlagSet(strings.TrimSpace("alarm "+action), flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	topicFlag := fs.String("topic", "", "alarm topic (default: the first entry of alarms with a plain topic and payloads)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the broker, and for it to pass the message back")
	username := fs.String("username", "", "log in as this user instead of mqtt.username (a CLI user that the broker's ACL lets publish and read alarms and resets)")
	passwordFile := fs.String("password-file", "", "file holding -username's password")
	if action != "" && action != "on" && action != "off" && action != "reset" && looksLikeConfig(action) {
		fmt.Fprintf(stderr, "doorbridge alarm: %q is not on, off or reset: a config file is given with -c (doorbridge alarm on -c %s)\nusage: doorbridge %s\n", action, action, synopsis)
		return 2
	}
	if code, done := parseFlags(fs, args, synopsis); done {
		return code
	}
	if action != "on" && action != "off" && action != "reset" {
		fmt.Fprintf(stderr, "usage: doorbridge %s\n", synopsis)
		return 2
	}
	cfg, err := config.Load(config.Path(*file))
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: %v\n", err)
		return 1
	}
	alarm, plain := bridge.DrillAlarm(cfg) // the console's drill picks the same entry
	if !plain && action != "reset" {
		fmt.Fprintf(stderr, "doorbridge: alarm %s: no alarm entry has a plain topic with payload_on/payload_off (entries with value_json or + are read from devices); add one, such as %s, for drills\n", action, config.DefaultAlarm(cfg.MQTT.BaseTopic).Topic)
		return 1
	}
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
	login := credentials{username: cfg.MQTT.Username}
	if *username != "" || *passwordFile != "" {
		login.username = *username
		if *passwordFile != "" {
			if login.password, err = secretfile.Read(*passwordFile); err != nil {
				fmt.Fprintf(stderr, "doorbridge: -password-file: %v\n", err)
				return 1
			}
		}
	} else if login.password, err = cfg.MQTTPassword(); err != nil {
		fmt.Fprintf(stderr, "doorbridge: %v\n", err)
		return 1
	}
	said, err := publishOnce(cfg, login, action, topic, payload, retained, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: alarm %s: %v\n", action, err)
		return 1
	}
	fmt.Fprintf(stdout, "published %q to %s (retained=%v); %s\n", payload, topic, retained, said)
	return 0
}

// credentials are a login to the broker.
type credentials struct{ username, password string }

// publishOnce connects to the first broker that answers, publishes one
// message, confirms that the broker took it and then that the bridge
// obeyed (bridgeConfirms), and says what the bridge did. A failure says in
// plain words what went wrong with each broker.
func publishOnce(cfg *config.Config, login credentials, action, topic, payload string, retained bool, timeout time.Duration) (string, error) {
	c, err := connectOnce(cfg, login.username, login.password, fmt.Sprintf("%s-cli-%d", cfg.ClientID(), os.Getpid()), timeout)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer c.Disconnect(250)
	var view *bridgeView
	topics := bridge.NewTopics(cfg)
	look := fmt.Sprintf("check what the bridge says (retained %s, or Home Assistant) before taking it as not published", topics.AlarmState)
	err = publishConfirmed(c, topic, payload, retained, timeout, look, func() (err error) {
		view, err = watchBridge(c, topics, timeout)
		return err
	})
	if err == nil {
		return view.confirms(action, topic, payload, timeout)
	}
	who := login.username
	if who == "" {
		who = "(anonymous)"
	}
	const logIn = "log in as a user that may, with -username USER -password-file FILE (configs/mosquitto/acl: user doorbridge-cli)"
	switch {
	case errors.Is(err, errNotConfirmed):
		return "", fmt.Errorf("%w: the broker's ACL (mosquitto's acl_file, or embedded_broker.acl) must let user %s publish and read %s; %s", err, who, topic, logIn)
	case errors.Is(err, errOutcomeUnknown):
		return "", fmt.Errorf("%w; if it was not, the broker's ACL may not let user %s publish and read %s: %s", err, who, topic, logIn)
	}
	return "", err
}

// errNotConfirmed marks a publish the broker did not pass back.
var errNotConfirmed = errors.New("NOT CONFIRMED")

// errOutcomeUnknown marks a publish whose connection dropped before the
// broker's acknowledgement or before the message came back: the broker
// may have taken it.
var errOutcomeUnknown = errors.New("OUTCOME UNKNOWN")

// publishConfirmed subscribes to topic, publishes payload and waits for
// the broker to pass it back. Under MQTT 3.1.1 a broker acknowledges a
// publish that its ACL drops (mosquitto only logs "Denied PUBLISH"), so the
// acknowledgement proves nothing; the message coming back does. A retained
// copy from before is not it: a live delivery has the retain flag clear.
//
// beforePublish runs once the subscription is in place (to watch the
// bridge's answer from before the publish).
//
// look says where to check when the outcome is unknown.
func publishConfirmed(c paho.Client, topic, payload string, retained bool, timeout time.Duration, look string, beforePublish func() error) error {
	echo := make(chan struct{}, 1)
	st := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		if !m.Retained() && string(m.Payload()) == payload {
			select {
			case echo <- struct{}{}:
			default:
			}
		}
	})
	if !st.WaitTimeout(timeout) {
		return errors.New("subscribe (to read the message back): no acknowledgement")
	}
	if err := st.Error(); err != nil {
		return fmt.Errorf("subscribe (to read the message back): %w", err)
	}
	if q := st.(*paho.SubscribeToken).Result()[topic]; q == 0x80 {
		return fmt.Errorf("%w: the broker refused to let this user read %s back, so the publish cannot be checked", errNotConfirmed, topic)
	}
	if err := beforePublish(); err != nil {
		return err
	}
	pt := c.Publish(topic, 1, retained, payload)
	if !pt.WaitTimeout(timeout) {
		return errors.New("publish: no acknowledgement")
	}
	if err := pt.Error(); err != nil {
		// The broker may have taken it and lost only the acknowledgement.
		return fmt.Errorf("%w, perhaps NOT PUBLISHED: the connection dropped before the broker acknowledged %q to %s (%v; the embedded broker does that to a publish its ACL denies); %s", errOutcomeUnknown, payload, topic, err, look)
	}
	select {
	case <-echo:
		return nil
	case <-time.After(timeout):
		if !c.IsConnectionOpen() {
			// The broker took it; the drop may have lost only the copy
			// coming back (a bridge taking its session back does that).
			return fmt.Errorf("%w, perhaps NOT PUBLISHED: the broker acknowledged %q to %s, then the connection dropped before it came back; %s", errOutcomeUnknown, payload, topic, look)
		}
		return fmt.Errorf("%w, NOT PUBLISHED: the broker acknowledged %q to %s but did not deliver it within %v (a publish its ACL denies is dropped silently)", errNotConfirmed, payload, topic, timeout)
	}
}
