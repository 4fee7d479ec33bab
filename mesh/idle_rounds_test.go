package mesh

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/mesh/memnet"
	"github.com/shoalmesh/shoal/metrics"
)

// An idle relay (loads that do not move, Config.LoadChanged set) sleeps
// through the rounds with nothing to do, yet every load stays as fresh as
// the confirmations make it, and a change that is signalled still goes out
// in the round after the signal, not with the next wave.
func TestIdleRelaySleepsThroughEmptyRounds(t *testing.T) {
	const n = 8
	// Waves 5 s apart: a change that waited for one would take seconds.
	const confirm = 5 * time.Second
	nw := memnet.New(3)
	if err := nw.SetDefault(memnet.Link{Latency: time.Millisecond, Jitter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ms := make([]*Mesh, n)
	cpus := make([]*atomic.Int64, n)
	sigs := make([]chan struct{}, n)
	for i := range ms {
		cpus[i], sigs[i] = &atomic.Int64{}, make(chan struct{}, 1)
		cpus[i].Store(int64(10 + i))
		cpu := cpus[i]
		m, err := New(Config{
			NodeName: fmt.Sprintf("s%d", i), BindAddr: fmt.Sprintf("10.11.0.%d", i+1), BindPort: 7946,
			Profile: ProfileLAN, Transport: MemoryTransport(nw), Keys: [][]byte{[]byte("0123456789abcdef")}, Label: "idle",
			Load: func() (metrics.Load, bool) {
				return metrics.Load{CPUPercent: float64(cpu.Load()), MemPercent: 40, Cores: 2}, true
			},
			LoadChanged: sigs[i], ConfirmInterval: confirm,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		ms[i] = m
	}
	for _, m := range ms[1:] {
		if _, err := m.Join([]string{"10.11.0.1:7946"}); err != nil {
			t.Fatal(err)
		}
	}
	// every checks that every node holds every other's current load,
	// confirmed within maxAge.
	every := func(maxAge time.Duration) error {
		now := time.Now()
		for _, o := range ms {
			for i, x := range ms {
				mem, ok := o.View().Member(x.LocalName())
				if !ok || mem.Load == nil {
					return fmt.Errorf("%s holds no load of %s", o.LocalName(), x.LocalName())
				}
				if got, want := mem.Load.CPUPercent, float64(cpus[i].Load()); got != want {
					return fmt.Errorf("%s holds %s at cpu %v, want %v", o.LocalName(), x.LocalName(), got, want)
				}
				if age := mem.LoadAge(now); !mem.Self && age > maxAge {
					return fmt.Errorf("%s holds %s's load %v old, want at most %v", o.LocalName(), x.LocalName(), age, maxAge)
				}
			}
		}
		return nil
	}
	// A confirmation reaches everyone within d = 3 rounds of its wave.
	const fresh = confirm + time.Second
	waitFor(t, 60*time.Second, "every node holds every load, fresh", func() error { return every(fresh) })

	ran, slept := ms[0].Stats().Rounds.Load(), ms[0].Stats().RoundsSlept.Load()
	start := time.Now()
	// An observation window, not a wait: the loads must stay fresh in
	// every look during it.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for range 25 { // five seconds: a wave, one or two reconciliations
		<-tick.C
		if err := every(fresh + 300*time.Millisecond); err != nil {
			t.Fatalf("idle: %v", err)
		}
	}
	elapsed := int64(time.Since(start) / (100 * time.Millisecond))
	ran, slept = ms[0].Stats().Rounds.Load()-ran, ms[0].Stats().RoundsSlept.Load()-slept
	t.Logf("s0 in %d idle rounds: %d run, %d slept", elapsed, ran, slept)
	// Running every round would be all of them; a wave (d = 3 rounds of
	// steps), a reconciliation every 3 s and a want or two are all there
	// is to do.
	if int64(ran) > elapsed/2 {
		t.Errorf("s0 ran %d of %d idle rounds, a wave every 5 s: want it asleep in most", ran, elapsed)
	}

	// A sample that moved nothing past a bucket wakes nothing: the wave
	// confirms it. (Rounds could not show it: a wave or reconciliation may
	// wake the node meanwhile.)
	for k := range 3 {
		sig, unmoved := ms[3].Stats().LoadSignals.Load(), ms[3].Stats().SignalsUnmoved.Load()
		cpus[3].Store(cpus[3].Load()) // the same load, sampled again
		sigs[3] <- struct{}{}
		waitFor(t, 5*time.Second, fmt.Sprintf("unmoved signal %d handled", k+1), func() error {
			if got := ms[3].Stats().LoadSignals.Load(); got == sig {
				return fmt.Errorf("s3 handled %d signals, still %d", got, sig)
			}
			return nil
		})
		if got := ms[3].Stats().SignalsUnmoved.Load(); got != unmoved+1 {
			t.Fatalf("s3 counted %d unmoved signals after one more with the same load, want %d", got, unmoved+1)
		}
	}

	// A move past a bucket, signalled to a node asleep between waves,
	// reaches everyone in the rounds of one relay (d = 3), not with the
	// next wave (up to 5 s on) or the next round the node runs anyway (a
	// reconciliation, up to 3 s on): five times, so that a node that woke
	// in time by chance would not pass them all.
	asleep := func() error {
		ms[3].mu.Lock()
		defer ms[3].mu.Unlock()
		if !ms[3].asleep {
			return fmt.Errorf("s3 is awake")
		}
		return nil
	}
	for k, cpu := range []int64{90, 13, 90, 13, 90} {
		// Not just before a wave: from the wave on, with s3 asleep.
		waitFor(t, 10*time.Second, "s3 asleep, not just before a wave", func() error {
			if into := time.Duration(time.Now().UnixNano()) % confirm; into > 3500*time.Millisecond {
				return fmt.Errorf("%v into the wave interval, within 1.5 s of the next wave", into)
			}
			return asleep()
		})
		cpus[3].Store(cpu)
		select {
		case sigs[3] <- struct{}{}:
		default: // one is pending already
		}
		waitFor(t, 1500*time.Millisecond, fmt.Sprintf("change %d, signalled, reaches everyone", k+1), func() error {
			return every(2 * confirm)
		})
	}
}
