// Package poll is how Shoal's tests wait: check a condition, and check it
// again every interval, until it holds or the time is up. Tests poll; they
// never sleep for an outcome.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks.
const Interval = 25 * time.Millisecond

// Until checks cond until it returns nil and returns how long that took,
// or fails t after d with what and cond's last error.
func Until(t testing.TB, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	return Every(t, d, Interval, what, cond)
}

// Every is Until with its own interval, for conditions that are costly to
// check (a docker exec, a browser round trip).
func Every(t testing.TB, d, every time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(every) // the poll interval, not a wait for an outcome
	}
}
