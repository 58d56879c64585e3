package broker

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/config"
)

// authHook is the embedded broker's login and ACL check: users from
// embedded_broker.users (bcrypt hashes or password files) and, per user, the
// topic patterns it may publish to and subscribe to. Anything not allowed is
// refused; an unknown or anonymous client cannot log in at all.
type authHook struct {
	mochi.HookBase
	log   *slog.Logger
	users map[string]*login
	acl   map[string]aclRules
	// The bridge's client id is its user's alone: a client that takes it
	// over cuts the bridge's connection, which releases every maglock.
	bridgeID, bridgeUser string

	mu     sync.Mutex
	conns  map[string]int      // connections per user, reserved at login
	byConn map[net.Conn]string // whose each counted connection is
	others int                 // connections other than the bridge's own
}

// maxConnsPerUser bounds each user's connections: the broker's memory, and
// the broker's client limit (maxClients), which a single user's logins
// could otherwise fill. The bridge's user may hold maxBridgeUserConns more
// besides its client id's (a CLI, test-door); the bridge's client id,
// with its user's password, always gets in: it takes its own old
// connection over, and the last of maxClients' slots is its alone.
const (
	maxConnsPerUser    = 16
	maxBridgeUserConns = 2
)

var _ mochi.Hook = (*authHook)(nil)

// aclRules are one user's topic patterns. deny is checked before publish:
// only the bridge's built-in rules use it.
type aclRules struct {
	publish, deny, subscribe []string
}

func newAuthHook(cfg *config.Config, log *slog.Logger) (*authHook, error) {
	e := &cfg.EmbeddedBroker
	h := &authHook{log: log, users: map[string]*login{}, acl: map[string]aclRules{},
		bridgeID: cfg.ClientID(), bridgeUser: cfg.MQTT.Username,
		conns: map[string]int{}, byConn: map[net.Conn]string{}}
	for i, u := range e.Users {
		l := &login{hash: []byte(u.PasswordHash)}
		if u.PasswordFile != "" {
			pw, err := u.Password()
			if err != nil {
				return nil, fmt.Errorf("embedded_broker.users[%d].password_file: %w", i, err)
			}
			l.plain = []byte(pw)
		}
		h.users[u.Username] = l
	}
	for _, a := range e.ACL {
		h.acl[a.Username] = aclRules{publish: a.Publish, subscribe: a.Subscribe}
	}
	bridgeUser := cfg.MQTT.Username
	if _, ok := h.acl[bridgeUser]; !ok {
		h.acl[bridgeUser] = bridgeACL(cfg)
	}
	pw, err := cfg.MQTTPassword()
	if err != nil {
		return nil, err
	}
	if u := h.users[bridgeUser]; u == nil || !u.verify([]byte(pw)) {
		return nil, fmt.Errorf("mqtt.username %q: the password in mqtt.password(_file) is not that user's password in embedded_broker.users; the bridge could not log in to its own broker", bridgeUser)
	}
	return h, nil
}

// bridgeACL is what the bridge's own user may do when the acl has no entry
// for it: read everything, publish its state, availability and discovery,
// but never a command, an alarm or a reset (those are Home Assistant's).
func bridgeACL(cfg *config.Config) aclRules {
	t := newTopics(cfg)
	return aclRules{
		publish:   []string{t.prefix + "/#", t.discoveryWild(cfg.MQTT.DiscoveryPrefix)},
		deny:      []string{t.DoorCommandWild, t.AlarmReset, t.Republish},
		subscribe: []string{"#"},
	}
}

// ID names the hook.
func (h *authHook) ID() string { return "doorbridge-auth" }

// Provides reports the hook's methods: login and ACL checks.
func (h *authHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

// reserve counts cl's connection against its user, and the broker's
// clients, before it is let in; it returns why not when there is no room.
// Counting at login, not once the session is up, keeps logins sent at once
// from all passing the check before any is counted.
func (h *authHook) reserve(cl *mochi.Client, user string) (refused string) {
	bridge := user == h.bridgeUser && cl.ID == h.bridgeID
	limit := maxConnsPerUser
	if user == h.bridgeUser {
		limit = maxBridgeUserConns
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case bridge:
		return "" // bounded by mochi's limit, bridgeSlack above maxClients
	case h.conns[user] >= limit:
		return fmt.Sprintf("it already has %d connections", limit)
	case h.others >= maxClients-1:
		return fmt.Sprintf("the broker has %d clients", maxClients)
	}
	h.others++
	h.conns[user]++
	h.byConn[cl.Net.Conn] = user
	return ""
}

// release gives conn's reservation back once mochi has finished with it
// (the listeners call it for every connection, logged in or not).
func (h *authHook) release(conn net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	user, ok := h.byConn[conn]
	if !ok {
		return
	}
	delete(h.byConn, conn)
	h.conns[user]--
	h.others--
}

// OnConnectAuthenticate lets a client in only with a configured user's
// password. Passwords are never logged.
func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	name := string(pk.Connect.Username)
	u, ok := h.users[name]
	if ok && pk.Connect.PasswordFlag && u.verify(pk.Connect.Password) {
		var reason string
		switch {
		case cl.ID == h.bridgeID && name != h.bridgeUser:
			reason = "the bridge's client id " + cl.ID + " is mqtt.username's only"
		case pk.Connect.WillFlag && !h.mayPublish(name, pk.Connect.WillTopic):
			// mochi v2.7.9 publishes a will without the acl check
			// (mochi-mqtt/server#503): a retained will on the alarm topic
			// would release every maglock.
			reason = "its will's topic " + pk.Connect.WillTopic + " is not in its acl's publish"
		default:
			if reason = h.reserve(cl, name); reason == "" {
				return true
			}
		}
		h.log.Warn("embedded broker refused a login", "username", name, "reason", reason, "remote", cl.Net.Remote)
		return false
	}
	reason := "wrong password"
	switch {
	case name == "":
		reason = "anonymous"
	case !ok:
		reason = "unknown user"
	}
	h.log.Warn("embedded broker refused a login", "username", name, "reason", reason, "remote", cl.Net.Remote)
	time.Sleep(failDelay)
	return false
}

// OnACLCheck allows a publish (write) to a topic matching one of the
// user's publish patterns, and a subscription, or the delivery of a
// message, whose filter or topic overlaps one of its subscribe patterns.
func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	r, ok := h.acl[string(cl.Properties.Username)]
	if !ok {
		return false
	}
	if write {
		if h.mayPublish(string(cl.Properties.Username), topic) {
			return true
		}
		h.log.Debug("embedded broker refused a publish", "username", string(cl.Properties.Username), "topic", topic)
		return false
	}
	for _, p := range r.subscribe {
		if TopicsOverlap(p, topic) {
			return true
		}
	}
	return false
}

// mayPublish reports whether user may publish to topic: it matches one of
// its publish patterns and none of its deny patterns. A topic with a
// wildcard (which only a will could carry) is never allowed.
func (h *authHook) mayPublish(user, topic string) bool {
	r, ok := h.acl[user]
	if !ok || topic == "" || strings.ContainsAny(topic, "+#") {
		return false
	}
	for _, p := range r.deny {
		if TopicsOverlap(p, topic) {
			return false
		}
	}
	for _, p := range r.publish {
		if TopicsOverlap(p, topic) {
			return true
		}
	}
	return false
}

// TopicsOverlap reports whether some topic matches both filters a and b
// (for a topic without wildcards: whether the filter matches it). "a/#"
// matches "a" too, as MQTT says.
func TopicsOverlap(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; ; i++ {
		switch {
		case i == len(as) && i == len(bs):
			return true
		case i == len(as):
			return bs[i] == "#"
		case i == len(bs):
			return as[i] == "#"
		}
		x, y := as[i], bs[i]
		switch {
		case x == "#" || y == "#":
			return true
		case x == "+" || y == "+" || x == y:
		default:
			return false
		}
	}
}

// bcryptSlots bounds the bcrypt checks running at once: each costs tens of
// milliseconds of a core, and wrong passwords sent in parallel must not
// take the bridge's CPU from its control loop.
var bcryptSlots = make(chan struct{}, 2)

// failDelay is how long a refused login waits before its answer. The
// connection meanwhile still counts against its host's pending logins
// (mochifix.Listener.Limit): one host guesses a few passwords a second at
// most.
const failDelay = 500 * time.Millisecond

// login is one user's credential: a bcrypt hash, or the plain password
// read from its password_file. A password that passed bcrypt is remembered
// as a SHA-256 sum, so that reconnections do not pay for bcrypt each time.
type login struct {
	hash  []byte
	plain []byte

	mu     sync.Mutex
	passed []byte
}

func (l *login) verify(pw []byte) bool {
	if l.plain != nil {
		return subtle.ConstantTimeCompare(pw, l.plain) == 1
	}
	sum := sha256.Sum256(pw)
	l.mu.Lock()
	cached := l.passed != nil && subtle.ConstantTimeCompare(sum[:], l.passed) == 1
	l.mu.Unlock()
	if cached {
		return true
	}
	bcryptSlots <- struct{}{}
	err := bcrypt.CompareHashAndPassword(l.hash, pw)
	<-bcryptSlots
	if err != nil {
		return false
	}
	l.mu.Lock()
	l.passed = bytes.Clone(sum[:])
	l.mu.Unlock()
	return true
}
