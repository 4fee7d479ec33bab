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
		"Reset(0)":     func() { c.NewTicker(time.Second).Reset(0) },
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
	tk.Stop()
	tk.Reset(time.Millisecond)
	select {
	case <-tk.C():
	case <-time.After(10 * time.Second):
		t.Fatal("no tick from a system ticker Reset to 1ms in 10s")
	}
}

func TestFakeClockReset(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := NewFakeClock(t0)
	tk := c.NewTicker(time.Second)
	noTick := func(when string) {
		t.Helper()
		select {
		case tick := <-tk.C():
			t.Fatalf("tick %v %s", tick, when)
		default:
		}
	}
	tickAt := func(want time.Time) {
		t.Helper()
		select {
		case tick := <-tk.C():
			if !tick.Equal(want) {
				t.Fatalf("tick = %v, want %v", tick, want)
			}
		default:
			t.Fatalf("no tick due at %v", want)
		}
	}

	// A longer period: the old one passing delivers nothing, the new one
	// counts from the Reset.
	c.Advance(500 * time.Millisecond) // t0+0.5s
	tk.Reset(3 * time.Second)
	c.Advance(time.Second) // t0+1.5s: the old schedule's tick was due at t0+1s
	noTick("at the old period after a Reset to a longer one")
	c.Advance(1999 * time.Millisecond) // t0+3.499s
	noTick("before the new period was up")
	c.Advance(time.Millisecond) // t0+3.5s
	tickAt(t0.Add(3500 * time.Millisecond))
	c.Advance(3 * time.Second)
	tickAt(t0.Add(6500 * time.Millisecond))

	// A shorter period takes effect at once.
	tk.Reset(100 * time.Millisecond)
	c.Advance(100 * time.Millisecond)
	tickAt(t0.Add(6600 * time.Millisecond))

	// A tick due under the old schedule and not yet taken is discarded.
	c.Advance(100 * time.Millisecond) // sends the t0+6.7s tick; nobody takes it
	tk.Reset(time.Second)
	noTick("of the old schedule after Reset")
	c.Advance(time.Second)
	tickAt(t0.Add(7700 * time.Millisecond))

	// A stopped ticker runs again after Reset.
	tk.Stop()
	tk.Reset(time.Second)
	if c.Tickers() != 1 {
		t.Fatalf("Tickers() after Stop and Reset = %d, want 1", c.Tickers())
	}
	c.Advance(time.Second)
	tickAt(t0.Add(8700 * time.Millisecond))
	tk.Stop()
}
