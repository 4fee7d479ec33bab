//go:build race

package largen

// raceEnabled: the tests run under the race detector; raceSize is the
// bounded harness's N under it.
const raceEnabled, raceSize = true, 30
