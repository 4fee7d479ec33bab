package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and bounds for Config.
const (
	// DefaultInterval is how often a Monitor samples when Config.Interval
	// is zero.
	DefaultInterval = time.Second
	// DefaultHalfLife is the smoothing half-life DefaultConfig sets.
	DefaultHalfLife = 5 * time.Second
	// MinInterval is the shortest sampling interval Config accepts.
	MinInterval = 10 * time.Millisecond
)

var (
	// ErrInvalidConfig is wrapped by the errors NewMonitor returns for a bad
	// Config; the message names the field and its value.
	ErrInvalidConfig = errors.New("metrics: invalid config")
	// ErrAlreadyRunning is returned by Run when the Monitor is already
	// running.
	ErrAlreadyRunning = errors.New("metrics: monitor is already running")
)

// Config configures a Monitor. Start from DefaultConfig.
type Config struct {
	// Interval is the time between samples. Zero means DefaultInterval;
	// otherwise it must be at least MinInterval.
	Interval time.Duration
	// HalfLife is the EWMA smoothing half-life (see EWMA). Zero means no
	// smoothing: Latest is the last interval's rates. Must not be negative.
	HalfLife time.Duration
	// Reader takes the readings. Nil means a new SystemReader.
	Reader Reader
	// Clock times the samples. Nil means SystemClock.
	Clock Clock
	// Logger receives read failures and recoveries; a "component" attribute
	// is added. Nil discards.
	Logger *slog.Logger
	// OnSample, if set, is called with every new smoothed Load, on the
	// Monitor's goroutine, after Latest has been updated. It must not block
	// for long: the next sample waits for it. It is not called for
	// Override.
	OnSample func(Load)
}

// DefaultConfig returns the production configuration: a sample a second,
// smoothed with a 5-second half-life, from the host through SystemReader.
func DefaultConfig() Config {
	return Config{Interval: DefaultInterval, HalfLife: DefaultHalfLife}
}

// validate reports the first bad value in c, naming it.
func (c *Config) validate() error {
	if c.Interval != 0 && c.Interval < MinInterval {
		return fmt.Errorf("%w: Interval is %v; use 0 for the default %v, or at least %v",
			ErrInvalidConfig, c.Interval, DefaultInterval, MinInterval)
	}
	if c.HalfLife < 0 {
		return fmt.Errorf("%w: HalfLife is %v; use 0 for no smoothing or a positive duration such as %v",
			ErrInvalidConfig, c.HalfLife, DefaultHalfLife)
	}
	return nil
}

// Monitor samples Counters from a Reader on a Clock's ticker, turns each pair
// of readings into a Load with Rates, smooths it with an EWMA, and keeps the
// result for Latest.
//
// Run drives it; Latest, Override and Errors are safe to call from any
// goroutine at any time, before, during and after Run.
type Monitor struct {
	interval time.Duration
	reader   Reader
	clock    Clock
	log      *slog.Logger
	onSample func(Load)
	ewma     EWMA // used by Run's goroutine only

	running atomic.Bool
	errors  atomic.Uint64

	mu       sync.Mutex
	latest   Load
	have     bool
	override *Load
}

// NewMonitor returns a Monitor for cfg, or an error wrapping ErrInvalidConfig
// that names the bad value.
func NewMonitor(cfg Config) (*Monitor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Reader == nil {
		cfg.Reader = NewSystemReader()
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Monitor{
		interval: cfg.Interval,
		reader:   cfg.Reader,
		clock:    cfg.Clock,
		log:      cfg.Logger.With("component", "metrics"),
		onSample: cfg.OnSample,
		ewma:     EWMA{HalfLife: cfg.HalfLife},
	}, nil
}

// Run samples until ctx is done, then returns nil. It reads once at once
// and then at every tick; the first Load is ready after the second good
// reading, one Interval in. A failed reading is logged, counted in Errors and
// skipped: the next good one is compared with the last good one, over the
// longer interval. Run returns ErrAlreadyRunning if called while running.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer m.running.Store(false)

	s := sampler{m: m}
	s.sample(ctx)
	// The ticker is made after the first reading, so that a test that waits
	// for the ticker (FakeClock.WaitForTickers) knows that reading is taken.
	t := m.clock.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			s.sample(ctx)
		}
	}
}

// sampler is Run's state between ticks.
type sampler struct {
	m       *Monitor
	prev    Counters
	prevAt  time.Time
	primed  bool
	lastErr string // message of the failure being reported, "" when healthy
}

func (s *sampler) sample(ctx context.Context) {
	m := s.m
	at := m.clock.Now()
	c, err := m.reader.Read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not a failure
		}
		n := m.errors.Add(1)
		if msg := err.Error(); msg != s.lastErr {
			// Log when failing starts or the failure changes, not every tick.
			m.log.Warn("reading load counters failed; keeping the last load", "err", err, "errors", n)
			s.lastErr = msg
		} else {
			m.log.Debug("reading load counters failed again", "err", err, "errors", n)
		}
		return
	}
	if s.lastErr != "" {
		m.log.Info("reading load counters works again", "errors", m.errors.Load())
		s.lastErr = ""
	}
	if !s.primed {
		s.prev, s.prevAt, s.primed = c, at, true
		return
	}
	prev, dt := s.prev, at.Sub(s.prevAt)
	s.prev, s.prevAt = c, at
	if dt <= 0 {
		// The clock did not move (or stepped back): no rate can be had.
		// Start again from this reading.
		m.log.Debug("clock did not advance between samples; skipping", "dt", dt)
		return
	}
	l := Rates(prev, c, dt)
	l.Taken = at
	l = m.ewma.Update(l, dt)

	m.mu.Lock()
	m.latest, m.have = l, true
	m.mu.Unlock()
	if m.onSample != nil {
		m.onSample(l)
	}
}

// Latest returns the newest smoothed Load, or the override if one is set.
// ok is false until the first Load is ready (and no override is set).
func (m *Monitor) Latest() (l Load, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.override != nil {
		return *m.override, true
	}
	return m.latest, m.have
}

// Override makes Latest return a copy of *l instead of measured figures,
// until Override(nil) clears it. It is a test hook: scale and load-sharing
// tests give nodes synthetic load with it. Sampling goes on underneath, and
// OnSample still sees the measured figures.
func (m *Monitor) Override(l *Load) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l == nil {
		m.override = nil
		return
	}
	cp := *l
	m.override = &cp
}

// Errors returns how many readings have failed since the Monitor was made.
func (m *Monitor) Errors() uint64 { return m.errors.Load() }
