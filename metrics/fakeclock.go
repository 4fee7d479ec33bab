package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// FakeClock is a Clock for tests: time stands still until Advance moves it,
// and Advance fires every ticker whose next tick falls at or before the new
// time. As with time.Ticker, a ticker whose receiver has not taken the last
// tick drops the new one, so advancing by many periods at once delivers one
// tick, not many.
//
// It lives in a non-test file so that other packages' tests can use it. A
// FakeClock is safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers map[*fakeTicker]struct{}
	changed chan struct{} // closed and replaced when the set of tickers changes
}

var (
	_ Clock  = (*FakeClock)(nil)
	_ Ticker = (*fakeTicker)(nil)
)

// NewFakeClock returns a FakeClock that reads start until advanced.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{
		now:     start,
		tickers: map[*fakeTicker]struct{}{},
		changed: make(chan struct{}),
	}
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker returns a Ticker whose first tick is due d from now. It panics if
// d is not positive, as time.NewTicker does.
func (c *FakeClock) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic(fmt.Sprintf("metrics: FakeClock.NewTicker: period %v is not positive", d))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{clock: c, ch: make(chan time.Time, 1), period: d, next: c.now.Add(d)}
	c.tickers[t] = struct{}{}
	c.notifyLocked()
	return t
}

// Advance moves the clock forward by d and fires the tickers that fall due.
// A negative d panics: time does not run backwards here.
func (c *FakeClock) Advance(d time.Duration) {
	if d < 0 {
		panic(fmt.Sprintf("metrics: FakeClock.Advance: %v is negative", d))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.tickers {
		if t.next.After(c.now) {
			continue
		}
		select {
		case t.ch <- t.next:
		default: // receiver behind: drop, as time.Ticker does
		}
		missed := c.now.Sub(t.next) / t.period
		t.next = t.next.Add((missed + 1) * t.period)
	}
}

// Tickers returns how many tickers are running (made and not stopped).
func (c *FakeClock) Tickers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tickers)
}

// WaitForTickers blocks until at least n tickers are running, or ctx is
// done. Tests call it before Advance so that the code under test has made
// its ticker and the tick is not lost.
func (c *FakeClock) WaitForTickers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		have, ch := len(c.tickers), c.changed
		c.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("metrics: waiting for %d fake tickers, have %d: %w", n, have, ctx.Err())
		}
	}
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type fakeTicker struct {
	clock  *FakeClock
	ch     chan time.Time
	period time.Duration // guarded by clock.mu
	next   time.Time     // guarded by clock.mu
}

func (t *fakeTicker) C() <-chan time.Time { return t.ch }

// Reset makes the ticker's next tick due d after the clock's current time,
// then every d. A tick of the old schedule that the receiver has not taken is
// discarded, as time.Ticker.Reset does since Go 1.23. A stopped ticker runs
// again (and counts in Tickers). It panics if d is not positive, as
// time.Ticker.Reset does.
func (t *fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic(fmt.Sprintf("metrics: FakeClock ticker Reset: period %v is not positive", d))
	}
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	t.period, t.next = d, c.now.Add(d)
	select {
	case <-t.ch:
	default:
	}
	if _, ok := c.tickers[t]; !ok {
		c.tickers[t] = struct{}{}
		c.notifyLocked()
	}
}

func (t *fakeTicker) Stop() {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.tickers[t]; ok {
		delete(c.tickers, t)
		c.notifyLocked()
	}
}
