package discovery_test

import (
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
)

// The device pages link to the web console only when it is on and its
// address is known from elsewhere than the bridge itself.
func TestConfigurationURLOnlyWithTheConsole(t *testing.T) {
	for _, tc := range []struct {
		console, listen, consoleURL, want string
	}{
		{config.ConsoleOff, "127.0.0.1:9180", "", ""},
		// On loopback, 127.0.0.1 would be the device of whoever opens HA's link.
		{config.ConsoleReadOnly, "127.0.0.1:9180", "", ""},
		{config.ConsoleReadOnly, "[::1]:9180", "", ""},
		{config.ConsoleReadOnly, "localhost:9180", "", ""},
		{config.ConsoleReadOnly, "127.0.0.1:9180", "https://doors.lan/", `"configuration_url":"https://doors.lan/"`},
		{config.ConsoleReadOnly, "192.168.1.5:9180", "", `"configuration_url":"http://192.168.1.5:9180/"`},
		{config.ConsoleReadOnly, "0.0.0.0:9180", "", ""},
		{config.ConsoleReadOnly, ":9180", "https://doors.lan:9180/", `"configuration_url":"https://doors.lan:9180/"`},
	} {
		cfg := goldenConfig(t)
		cfg.HTTP.Console, cfg.HTTP.Listen, cfg.HTTP.ConsoleURL = tc.console, tc.listen, tc.consoleURL
		for _, m := range discovery.Build(cfg, testInfo) {
			got := string(m.Payload)
			if tc.want == "" && strings.Contains(got, "configuration_url") || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("console %s on %q (console_url %q): %s: want %q in\n%s", tc.console, tc.listen, tc.consoleURL, m.Topic, tc.want, got)
			}
		}
	}
}
