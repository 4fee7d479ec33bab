//go:build !race

package largen

const raceEnabled, raceSize = false, 0
