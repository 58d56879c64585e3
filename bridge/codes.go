package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/doorbridge/doorbridge/internal/atomicfile"
)

// codeGuard limits guessing of one code (one bcrypt hash). Doors that share
// a code (bridge.code_hash) share its guard: wrong codes on any of them
// count together, and a lockout refuses the code on all of them (issue 12,
// item 7). Only the loop touches it.
type codeGuard struct {
	key   string   // names the code in the state file: not the hash itself
	hash  string   // bcrypt hash the code must match
	doors []string // the doors that take this code, for messages
	// failures counts wrong codes since the last right one or lockout. A
	// check counts as wrong from the moment it starts until it succeeds, so
	// a crash or restart in the middle of one still counts it.
	failures int
	// lockouts counts lockouts since the last right code: each one lasts
	// twice as long as the one before, up to codes.max_lockout.
	lockouts int
	until    time.Time // the code is refused until then
	busy     bool      // a check of this code is running
}

// codeStateFile keeps every guard's counts in bridge.state_dir (R23).
const codeStateFile = "code_lockout.json"

type codeState struct {
	Failures int       `json:"failures"`
	Lockouts int       `json:"lockouts"`
	Until    time.Time `json:"until,omitzero"`
}

// codeKey names a code in the state file by a digest of its hash, so that
// the file does not hold the hash, and a changed code starts afresh.
func codeKey(hash string) string {
	sum := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(sum[:8])
}

// openCodeGuards gives every door with a code the guard of that code.
func (b *Bridge) openCodeGuards() {
	b.guards = map[string]*codeGuard{}
	for _, d := range b.doors {
		hash := b.cfg.EffectiveCodeHash(d.cfg)
		if hash == "" {
			continue
		}
		g := b.guards[hash]
		if g == nil {
			g = &codeGuard{key: codeKey(hash), hash: hash}
			b.guards[hash] = g
		}
		g.doors = append(g.doors, d.cfg.ID)
		d.guard = g
	}
}

// lockoutFor is how long the n-th lockout in a row lasts: codes.lockout,
// doubled for each one before it, at most max(codes.max_lockout, lockout).
func lockoutFor(n int, base, limit time.Duration) time.Duration {
	limit = max(limit, base)
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// loadCodeState restores the guards from bridge.state_dir. A file that
// cannot be read or understood is read as the safe value: every code
// locked out for codes.lockout from now (a guess is never let through
// because the count of earlier guesses was lost). It returns what was
// wrong, for the audit trail, or "".
func (b *Bridge) loadCodeState(now time.Time) string {
	if b.cfg.Bridge.StateDir == "" || len(b.guards) == 0 {
		return ""
	}
	path := filepath.Join(b.cfg.Bridge.StateDir, codeStateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	var saved map[string]codeState
	if err == nil {
		err = json.Unmarshal(data, &saved)
	}
	if err == nil {
		err = validCodeState(saved)
	}
	if err != nil {
		why := fmt.Sprintf("code lockout state %s unreadable (%v): every code locked out for %v", path, err, b.cfg.Codes.Lockout)
		b.log.Error("cannot read code lockout state; locking every code out", "file", path, "err", err, "for", b.cfg.Codes.Lockout)
		for _, g := range b.guards {
			g.lockouts = max(g.lockouts, 1)
			g.until = now.Add(b.cfg.Codes.Lockout)
		}
		return why
	}
	for _, g := range b.guards {
		if s, ok := saved[g.key]; ok {
			g.failures, g.lockouts, g.until = s.Failures, s.Lockouts, s.Until
		}
	}
	return ""
}

func validCodeState(saved map[string]codeState) error {
	for k, s := range saved {
		if s.Failures < 0 || s.Lockouts < 0 {
			return fmt.Errorf("code %s: negative count", k)
		}
	}
	return nil
}

// saveCodeState writes every guard's counts to bridge.state_dir, fsynced:
// the loop calls it (flushLater) after the relays of the event that changed
// them, before the command's result goes out.
func (b *Bridge) saveCodeState() {
	if b.cfg.Bridge.StateDir == "" {
		return
	}
	out := map[string]codeState{}
	for _, g := range b.guards {
		out[g.key] = codeState{Failures: g.failures, Lockouts: g.lockouts, Until: g.until.UTC()}
	}
	data, _ := json.MarshalIndent(out, "", "  ")
	path := filepath.Join(b.cfg.Bridge.StateDir, codeStateFile)
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		b.log.Error("cannot save code lockout state", "file", path, "err", err)
	}
}

// doorList names a guard's doors for people.
func (g *codeGuard) doorList() string {
	return strings.Join(slices.Sorted(slices.Values(g.doors)), ", ")
}
