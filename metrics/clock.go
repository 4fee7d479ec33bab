package metrics

import "time"

// Clock is the source of time for the Monitor and anything else that samples
// on a schedule. SystemClock is the real one; FakeClock is for tests.
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTicker returns a Ticker that ticks every d. d must be positive.
	NewTicker(d time.Duration) Ticker
}

// Ticker delivers ticks on a channel, like time.Ticker: when the receiver
// falls behind, ticks are dropped rather than queued.
type Ticker interface {
	// C returns the channel the ticks are sent on.
	C() <-chan time.Time
	// Stop turns the ticker off. No tick is sent after Stop returns; the
	// channel is not closed.
	Stop()
	// Reset makes the ticker tick every d from now on, as time.Ticker.Reset
	// does: the next tick is due d after the call, and no tick of the old
	// schedule is received after Reset returns. A stopped ticker starts
	// again. d must be positive.
	Reset(d time.Duration)
}

// SystemClock is the Clock of the real world, backed by package time.
type SystemClock struct{}

var (
	_ Clock  = SystemClock{}
	_ Ticker = systemTicker{}
)

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTicker returns a Ticker backed by time.NewTicker.
func (SystemClock) NewTicker(d time.Duration) Ticker { return systemTicker{time.NewTicker(d)} }

type systemTicker struct{ t *time.Ticker }

func (s systemTicker) C() <-chan time.Time { return s.t.C }
func (s systemTicker) Stop()               { s.t.Stop() }

// Reset calls time.Ticker.Reset, which discards a tick of the old schedule
// not yet received when the main module's go line is 1.23 or later (this
// module's is).
func (s systemTicker) Reset(d time.Duration) { s.t.Reset(d) }
