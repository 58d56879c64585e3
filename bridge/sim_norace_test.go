//go:build !race

package bridge

// simRaceScale divides the default number of schedules under the race
// detector (sim_race_test.go).
const simRaceScale = 1
