//go:build race

package bridge

// simRaceScale divides the default number of schedules under the race
// detector, which makes each about ten times slower.
const simRaceScale = 10
