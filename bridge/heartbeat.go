package bridge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// heartbeatKey signs the bridge's heartbeat probes. The key is random and
// never leaves the process, so only an echo of a probe this process sent
// proves the link: another client (or a retained message) on the heartbeat
// topic cannot forge one, whatever it has seen before (issue 12 item 10).
// Replays of older echoes are refused by their sequence number (the loop
// keeps the highest one accepted).
type heartbeatKey struct{ key []byte }

func newHeartbeatKey() *heartbeatKey {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("heartbeat key: " + err.Error()) // crypto/rand never fails on Linux
	}
	return &heartbeatKey{key: k}
}

// macLen is the length of the signature in hex: 128 bits.
const macLen = 32

func (k *heartbeatKey) mac(body string) string {
	h := hmac.New(sha256.New, k.key)
	h.Write([]byte(body))
	return hex.EncodeToString(h.Sum(nil))[:macLen]
}

// probe is the payload of heartbeat seq on connection gen, sent at ns.
func (k *heartbeatKey) probe(gen, seq uint64, ns int64) string {
	body := strconv.FormatUint(gen, 10) + " " + strconv.FormatUint(seq, 10) + " " + strconv.FormatInt(ns, 10)
	return body + " " + k.mac(body)
}

// echo is a verified heartbeat echo.
type echo struct {
	gen, seq uint64
	ns       int64
}

// verify reads an echo: ok only if this process signed it.
func (k *heartbeatKey) verify(payload []byte) (echo, bool) {
	s := string(payload)
	i := strings.LastIndexByte(s, ' ')
	if len(s) > 100 || i < 0 || len(s)-i-1 != macLen || !hmac.Equal([]byte(s[i+1:]), []byte(k.mac(s[:i]))) {
		return echo{}, false
	}
	f := strings.Split(s[:i], " ")
	if len(f) != 3 {
		return echo{}, false
	}
	gen, err1 := strconv.ParseUint(f[0], 10, 64)
	seq, err2 := strconv.ParseUint(f[1], 10, 64)
	ns, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return echo{}, false
	}
	return echo{gen: gen, seq: seq, ns: ns}, true
}
