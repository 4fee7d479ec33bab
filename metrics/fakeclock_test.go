package metrics

import (
	"context"
	"testing"
	"time"
)

func TestFakeClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := NewFakeClock(t0)
	if !c.Now().Equal(t0) {
		t.Fatalf("Now() = %v, want %v", c.Now(), t0)
	}
	tk := c.NewTicker(time.Second)
	if c.Tickers() != 1 {
		t.Fatalf("Tickers() = %d, want 1", c.Tickers())
	}

	c.Advance(999 * time.Millisecond)
	select {
	case tick := <-tk.C():
		t.Fatalf("tick at %v before the period was up", tick)
	default:
	}

	c.Advance(time.Millisecond)
	select {
	case tick := <-tk.C():
		if want := t0.Add(time.Second); !tick.Equal(want) {
			t.Fatalf("tick = %v, want %v", tick, want)
		}
	default:
		t.Fatal("no tick when the period was up")
	}

	// Advancing many periods with nobody receiving delivers one tick, and
	// the schedule stays on the period grid.
	c.Advance(5500 * time.Millisecond) // now t0+6.5s
	if tick := <-tk.C(); !tick.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("tick = %v, want the first one due, %v", tick, t0.Add(2*time.Second))
	}
	select {
	case tick := <-tk.C():
		t.Fatalf("second tick %v queued; ticks should drop", tick)
	default:
	}
	c.Advance(500 * time.Millisecond) // t0+7s
	if tick := <-tk.C(); !tick.Equal(t0.Add(7 * time.Second)) {
		t.Fatalf("tick = %v, want %v", tick, t0.Add(7*time.Second))
	}

	tk.Stop()
	tk.Stop() // twice is fine
	if c.Tickers() != 0 {
		t.Fatalf("Tickers() after Stop = %d, want 0", c.Tickers())
	}
	c.Advance(10 * time.Second)
	select {
	case tick := <-tk.C():
		t.Fatalf("tick %v after Stop", tick)
	default:
	}
}

func TestFakeClockWaitForTickers(t *testing.T) {
	c := NewFakeClock(time.Unix(0, 0))
	done := make(chan error, 1)
	go func() { done <- c.WaitForTickers(context.Background(), 2) }()
	c.NewTicker(time.Second)
	c.NewTicker(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.WaitForTickers(ctx, 3); err == nil {
		t.Fatal("WaitForTickers with a cancelled context returned nil")
	}
}

func TestFakeClockPanics(t *testing.T) {
	c := NewFakeClock(time.Unix(0, 0))
	for name, f := range map[string]func(){
		"NewTicker(0)": func() { c.NewTicker(0) },
		"Advance(-1s)": func() { c.Advance(-time.Second) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestSystemClock(t *testing.T) {
	var c Clock = SystemClock{}
	before := time.Now()
	if now := c.Now(); now.Before(before) {
		t.Fatalf("Now() = %v, before %v", now, before)
	}
	tk := c.NewTicker(time.Millisecond)
	defer tk.Stop()
	select {
	case <-tk.C():
	case <-time.After(10 * time.Second):
		t.Fatal("no tick from a 1ms system ticker in 10s")
	}
}
