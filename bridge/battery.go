package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// mainsStable is how long mains must be back without a break before the
// battery budget of power_release: false (config.MaxHoldOnBattery, R8) is
// full again. Until then the time on battery adds up over every outage: a
// flap, or a restart of the bridge, gives no new 10 minutes. An hour is
// conservative (a lock supply's battery takes hours to recharge) and costs
// nothing while mains are on: it only shortens a hold on battery that
// follows an outage within the hour.
const mainsStable = time.Hour

// batteryBudget is the time on battery counted against MaxHoldOnBattery.
// It is kept in bridge.state_dir (record battery) at every change.
type batteryBudget struct {
	// Used is the time on battery before the current outage, since the
	// budget was last full.
	Used time.Duration `json:"used"`
	// LostAt is when the current outage began; zero while mains are on.
	// Across a restart during an outage it keeps the outage's start: the
	// time the bridge was down counts as on battery.
	LostAt time.Time `json:"lost_at"`
	// OKSince is when mains came back; zero during an outage, or before
	// mains were first reported.
	OKSince time.Time `json:"ok_since"`
	// Boot and LostUp are the kernel's boot id and its time since boot
	// (which no clock step moves) when the current outage began: after a
	// restart in the same boot they tell how long the outage really lasts,
	// whatever the wall clock says now.
	Boot   string        `json:"boot,omitempty"`
	LostUp time.Duration `json:"lost_up,omitempty"`
}

// bootClock returns the boot id and the time since boot (CLOCK_BOOTTIME,
// through /proc/uptime), ok false when they cannot be read. Tests replace it.
var bootClock = func() (boot string, up time.Duration, ok bool) {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", 0, false
	}
	raw, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "", 0, false
	}
	first, _, _ := strings.Cut(string(raw), " ")
	secs, err := strconv.ParseFloat(first, 64)
	if err != nil {
		return "", 0, false
	}
	return strings.TrimSpace(string(id)), time.Duration(secs * float64(time.Second)), true
}

// outageStarted notes the boot clock at the start of an outage.
func (b *batteryBudget) outageStarted() {
	b.Boot, b.LostUp = "", 0
	if boot, up, ok := bootClock(); ok {
		b.Boot, b.LostUp = boot, up
	}
}

// rebase runs at start: in the boot the outage began in, the boot clock
// tells how long the outage really lasts. A wall clock that counts less
// (stepped back since: NTP, a clock taken from a wrong source) makes what
// the outage cost unknown, so it is all: the budget is spent, as when the
// clock went back behind the outage's start (mains). It reports whether
// the budget changed.
func (b *batteryBudget) rebase(now time.Time) bool {
	if b.LostAt.IsZero() || b.Boot == "" {
		return false
	}
	boot, up, ok := bootClock()
	if !ok || boot != b.Boot || up < b.LostUp {
		return false // another boot: the wall clock is all there is (mains checks it)
	}
	// /proc/uptime counts in hundredths: a second covers that and the
	// time between the two readings.
	if now.Sub(b.LostAt) >= up-b.LostUp-time.Second {
		return false
	}
	b.Used, b.LostAt, b.LostUp = config.MaxHoldOnBattery, now, up
	return true
}

// spentBudget is what a damaged record reads as: the budget spent, so a door
// with power_release: false releases at once on battery, as every other
// door does, until mains have been stable for mainsStable.
func spentBudget() batteryBudget { return batteryBudget{Used: config.MaxHoldOnBattery} }

// since is the loop's powerSince: a start such that now.Sub(since) is the
// time on battery counted against the budget (zero while mains are on).
func (b batteryBudget) since() time.Time {
	if b.LostAt.IsZero() {
		return time.Time{}
	}
	return b.LostAt.Add(-b.Used)
}

// mains records whether mains are lost now; it reports whether the budget
// changed (and so must be saved).
func (b *batteryBudget) mains(lost bool, now time.Time) bool {
	if now.Before(b.LostAt) {
		// The clock went back since the outage began (a board without a
		// real-time clock restarted): what it has cost is unknown, so all.
		b.Used, b.LostAt = config.MaxHoldOnBattery, now
		if !lost {
			b.LostAt, b.OKSince = time.Time{}, now
		}
		return true
	}
	switch {
	case lost && b.LostAt.IsZero():
		if !b.OKSince.IsZero() && now.Sub(b.OKSince) >= mainsStable {
			b.Used = 0 // stable long enough: full again
		}
		b.LostAt, b.OKSince = now, time.Time{}
		b.outageStarted()
	case !lost && !b.LostAt.IsZero():
		b.Used = min(b.Used+now.Sub(b.LostAt), config.MaxHoldOnBattery)
		b.LostAt, b.OKSince, b.Boot, b.LostUp = time.Time{}, now, "", 0
	case !lost && b.OKSince.IsZero():
		b.OKSince = now // the first report of mains: the stable time starts
	default:
		return false
	}
	return true
}

func (b batteryBudget) encode() []byte {
	v, _ := json.Marshal(b)
	return v
}

// loadBattery reads the battery budget; damaged, it is spent.
func (s *stateStore) loadBattery() (batteryBudget, error) {
	spent := spentBudget()
	v, err := s.Load(batteryRecord, batteryBudget{}.encode(), spent.encode())
	var b batteryBudget
	if jerr := json.Unmarshal(v, &b); jerr != nil {
		return spent, errors.Join(err, fmt.Errorf("statefile: %s: %w", batteryRecord, jerr))
	}
	if b.Used < 0 || b.Used > config.MaxHoldOnBattery {
		return spent, errors.Join(err, fmt.Errorf("statefile: %s: used %v is outside 0–%v", batteryRecord, b.Used, config.MaxHoldOnBattery))
	}
	return b, err
}
