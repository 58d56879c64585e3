package broker

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/config"
	_ "github.com/doorbridge/doorbridge/drivers/sim" // the test door's relay driver, for config validation
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

const wait = 5 * time.Second // deadline for an expected outcome

// testConfig is a bridge's config as the broker sees it: bridge t1 under
// db, one door (config validation wants one).
func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Bridge.ID = "t1"
	cfg.MQTT.BaseTopic = "db"
	cfg.HTTP.Listen = ""
	cfg.Doors = []config.Door{{ID: "fs", Name: "Fire exit", FailMode: config.FailSafe, Relay: config.Line{Driver: "sim", Channel: "0"}, UnlockTime: time.Second}}
	cfg.Drivers = []config.Driver{{ID: "sim", Type: "sim"}}
	cfg.Alarms = []config.Alarm{config.DefaultAlarm(cfg.MQTT.BaseTopic)}
	return &cfg
}

// testLogger shows the broker's log with DOORBRIDGE_TEST_LOG set.
func testLogger(testing.TB) *slog.Logger {
	if os.Getenv("DOORBRIDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func attackProbe(t *testing.T) {
	t.Helper()
	if os.Getenv("DOORBRIDGE_ATTACK") != "1" {
		t.Skip("attack probe: set DOORBRIDGE_ATTACK=1")
	}
}

// startWithUsers starts a broker on a free port with the bridge's user
// (doorbridge, bridge-secret-1), the other users given (name → password)
// and their acl; it is closed when the test ends.
func startWithUsers(t *testing.T, users [][2]string, acl []config.BrokerACL) (eb *Broker, cfg *config.Config, listen string) {
	t.Helper()
	cfg = testConfig()
	listen = testbroker.FreeAddr(t)
	cfg.MQTT.Username, cfg.MQTT.Password = "doorbridge", "bridge-secret-1"
	cfg.EmbeddedBroker = config.EmbeddedBroker{
		Listen: listen,
		Users:  []config.BrokerUser{{Username: "doorbridge", PasswordHash: bcryptHash(t, "bridge-secret-1")}},
		ACL:    acl,
	}
	for _, u := range users {
		cfg.EmbeddedBroker.Users = append(cfg.EmbeddedBroker.Users, config.BrokerUser{Username: u[0], PasswordHash: bcryptHash(t, u[1])})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	eb, err := Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eb.Close() })
	return eb, cfg, listen
}
