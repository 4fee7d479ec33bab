package metrics

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/internal/testbin"
)

// waitLimit bounds every wait in these tests; nothing here sleeps, and on a
// healthy machine every wait ends within microseconds.
const waitLimit = 10 * time.Second

// scriptedReader returns its script one step per Read and signals each Read
// on reads.
type scriptedReader struct {
	mu    sync.Mutex
	steps []scriptStep
	reads chan struct{}
}

type scriptStep struct {
	c   Counters
	err error
}

func newScriptedReader(steps ...scriptStep) *scriptedReader {
	return &scriptedReader{steps: steps, reads: make(chan struct{}, 100)}
}

func (r *scriptedReader) Read(ctx context.Context) (Counters, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.reads <- struct{}{} }()
	if len(r.steps) == 0 {
		return Counters{}, errors.New("script exhausted")
	}
	s := r.steps[0]
	r.steps = r.steps[1:]
	return s.c, s.err
}

func ok(c Counters) scriptStep   { return scriptStep{c: c} }
func fail(msg string) scriptStep { return scriptStep{err: errors.New(msg)} }

// counters makes a reading: busy and total CPU seconds, eth0 bytes both ways.
func counters(busy, total float64, netBytes uint64) Counters {
	return Counters{
		CPUBusy: busy, CPUTotal: total,
		MemTotal: 1000, MemAvailable: 600,
		Net:          map[string]NetCounters{"eth0": {netBytes, netBytes}},
		Load1:        0.5,
		LogicalCores: 2,
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s within %v", what, waitLimit)
		panic("unreachable")
	}
}

// harness runs a Monitor on a FakeClock with a scripted Reader.
type harness struct {
	t       *testing.T
	clk     *FakeClock
	m       *Monitor
	reader  *scriptedReader
	samples chan Load
	logs    *testbin.SyncBuffer
	cancel  context.CancelFunc
	done    chan error
	t0      time.Time
}

func startMonitor(t *testing.T, cfg Config, steps ...scriptStep) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		t0:      time.Unix(1_700_000_000, 0),
		reader:  newScriptedReader(steps...),
		samples: make(chan Load, 100),
		logs:    &testbin.SyncBuffer{},
		done:    make(chan error, 1),
	}
	h.clk = NewFakeClock(h.t0)
	cfg.Reader, cfg.Clock = h.reader, h.clk
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.OnSample = func(l Load) { h.samples <- l }
	m, err := NewMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- m.Run(ctx) }()
	t.Cleanup(h.stop)

	// The ticker is made after the first reading.
	wctx, wcancel := context.WithTimeout(context.Background(), waitLimit)
	defer wcancel()
	if err := h.clk.WaitForTickers(wctx, 1); err != nil {
		t.Fatal(err)
	}
	recv(t, h.reader.reads, "first reading")
	return h
}

// tick advances the clock one interval and waits until the Monitor has
// taken the reading, so that the next tick cannot be dropped.
func (h *harness) tick(d time.Duration) {
	h.t.Helper()
	h.clk.Advance(d)
	recv(h.t, h.reader.reads, "reading after tick")
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := recv(h.t, h.done, "Run to return"); err != nil {
		h.t.Errorf("Run returned %v, want nil", err)
	}
	if n := h.clk.Tickers(); n != 0 {
		h.t.Errorf("%d tickers left running after Run returned", n)
	}
}

func TestMonitorSamples(t *testing.T) {
	h := startMonitor(t, Config{Interval: time.Second},
		ok(counters(10, 100, 0)),
		ok(counters(10.5, 101, 1000)),
		ok(counters(10.75, 102, 3000)),
	)
	if l, ok := h.m.Latest(); ok {
		t.Fatalf("Latest() before a second reading = %+v, true", l)
	}

	h.tick(time.Second)
	got := recv(t, h.samples, "sample 1")
	want := Load{CPUPercent: 50, MemPercent: 40, MemAvailable: 600, NetRxBps: 1000, NetTxBps: 1000, Load1: 0.5, Cores: 2, Taken: h.t0.Add(time.Second)}
	if !loadNear(got, want, 1e-9) {
		t.Fatalf("sample 1 = %+v, want %+v", got, want)
	}
	if l, ok := h.m.Latest(); !ok || !loadNear(l, want, 1e-9) {
		t.Fatalf("Latest() = %+v, %v; want %+v", l, ok, want)
	}

	h.tick(time.Second)
	got = recv(t, h.samples, "sample 2")
	if got.CPUPercent != 25 || got.NetRxBps != 2000 || !got.Taken.Equal(h.t0.Add(2*time.Second)) {
		t.Fatalf("sample 2 = %+v, want CPU 25%%, 2000 B/s at t0+2s", got)
	}
	if n := h.m.Errors(); n != 0 {
		t.Fatalf("Errors() = %d, want 0", n)
	}
}

func TestMonitorSmooths(t *testing.T) {
	h := startMonitor(t, Config{Interval: time.Second, HalfLife: time.Second},
		ok(counters(0, 0, 0)),
		ok(counters(0, 1, 0)), // 0% busy
		ok(counters(1, 2, 0)), // 100% busy
		ok(counters(2, 3, 0)), // 100% busy
	)
	h.tick(time.Second)
	if got := recv(t, h.samples, "sample 1"); got.CPUPercent != 0 {
		t.Fatalf("sample 1 CPU = %g, want 0", got.CPUPercent)
	}
	h.tick(time.Second)
	if got := recv(t, h.samples, "sample 2"); got.CPUPercent != 50 {
		t.Fatalf("sample 2 CPU = %g, want 50 (half way after one half-life)", got.CPUPercent)
	}
	h.tick(time.Second)
	if got := recv(t, h.samples, "sample 3"); got.CPUPercent != 75 {
		t.Fatalf("sample 3 CPU = %g, want 75", got.CPUPercent)
	}
}

func TestMonitorReadErrors(t *testing.T) {
	h := startMonitor(t, Config{Interval: time.Second},
		ok(counters(0, 0, 0)),
		ok(counters(1, 2, 1000)),
		fail("disk on fire"),
		fail("disk on fire"),
		ok(counters(2, 4, 7000)),
	)
	h.tick(time.Second)
	recv(t, h.samples, "sample 1")
	h.tick(time.Second)
	h.tick(time.Second)
	h.tick(time.Second)
	got := recv(t, h.samples, "sample after the failures")
	// Compared with the last good reading, three seconds back.
	if got.NetRxBps != 2000 || got.CPUPercent != 50 || !got.Taken.Equal(h.t0.Add(4*time.Second)) {
		t.Fatalf("sample = %+v, want 2000 B/s and 50%% over the 3s since the last good reading", got)
	}
	if n := h.m.Errors(); n != 2 {
		t.Fatalf("Errors() = %d, want 2", n)
	}
	h.stop()
	if n := len(h.samples); n != 0 {
		t.Fatalf("%d extra samples; a failed reading must not make one", n)
	}

	logs := h.logs.String()
	if c := strings.Count(logs, "level=WARN"); c != 1 {
		t.Errorf("%d warnings for one run of identical failures, want 1:\n%s", c, logs)
	}
	for _, want := range []string{"component=metrics", "disk on fire", "works again"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestMonitorFirstReadFails(t *testing.T) {
	h := startMonitor(t, Config{Interval: time.Second},
		fail("not yet"),
		ok(counters(0, 0, 0)),
		ok(counters(1, 4, 0)),
	)
	h.tick(time.Second)
	h.tick(time.Second)
	if got := recv(t, h.samples, "sample"); got.CPUPercent != 25 {
		t.Fatalf("sample = %+v, want CPU 25%%", got)
	}
	if n := h.m.Errors(); n != 1 {
		t.Fatalf("Errors() = %d, want 1", n)
	}
}

func TestMonitorOverride(t *testing.T) {
	h := startMonitor(t, Config{Interval: time.Second},
		ok(counters(0, 0, 0)),
		ok(counters(1, 2, 0)),
		ok(counters(2, 4, 0)),
	)
	synthetic := Load{CPUPercent: 97, Cores: 8}
	h.m.Override(&synthetic)
	synthetic.CPUPercent = 1 // the Monitor keeps its own copy
	if l, ok := h.m.Latest(); !ok || l.CPUPercent != 97 || l.Cores != 8 {
		t.Fatalf("Latest() with override = %+v, %v; want the override", l, ok)
	}

	h.tick(time.Second)
	if got := recv(t, h.samples, "sample"); got.CPUPercent != 50 {
		t.Fatalf("OnSample got %+v, want the measured 50%%", got)
	}
	if l, _ := h.m.Latest(); l.CPUPercent != 97 {
		t.Fatalf("Latest() = %+v, want the override to win over samples", l)
	}

	h.m.Override(nil)
	if l, ok := h.m.Latest(); !ok || l.CPUPercent != 50 {
		t.Fatalf("Latest() after clearing the override = %+v, %v; want the measured 50%%", l, ok)
	}
}

func TestMonitorRunTwice(t *testing.T) {
	h := startMonitor(t, Config{Interval: time.Second}, ok(counters(0, 0, 0)))
	if err := h.m.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

// TestMonitorLatestConcurrent reads Latest while samples are taken; run with
// -race.
func TestMonitorLatestConcurrent(t *testing.T) {
	var steps []scriptStep
	for i := range 50 {
		steps = append(steps, ok(counters(float64(i), float64(2*i), uint64(i*100))))
	}
	h := startMonitor(t, Config{Interval: time.Second, HalfLife: 3 * time.Second}, steps...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					if l, ok := h.m.Latest(); ok && (l.CPUPercent < 0 || l.CPUPercent > 100) {
						t.Errorf("Latest() CPU %g out of range", l.CPUPercent)
						return
					}
					h.m.Override(nil)
					_ = h.m.Errors()
				}
			}
		}()
	}
	for range 49 {
		h.tick(time.Second)
		recv(t, h.samples, "sample")
	}
	close(stop)
	wg.Wait()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"zero", Config{}, ""},
		{"default", DefaultConfig(), ""},
		{"min interval", Config{Interval: MinInterval}, ""},
		{"interval too short", Config{Interval: time.Millisecond}, "Interval is 1ms"},
		{"interval negative", Config{Interval: -time.Second}, "Interval is -1s"},
		{"half-life negative", Config{HalfLife: -5 * time.Second}, "HalfLife is -5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMonitor(tt.cfg)
			if tt.want == "" {
				if err != nil || m == nil {
					t.Fatalf("NewMonitor(%+v) = %v, %v; want a Monitor", tt.cfg, m, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewMonitor(%+v) error = %v, want ErrInvalidConfig naming %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestNewMonitorDefaults(t *testing.T) {
	m, err := NewMonitor(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if m.interval != DefaultInterval {
		t.Errorf("interval = %v, want %v", m.interval, DefaultInterval)
	}
	if _, ok := m.reader.(*SystemReader); !ok {
		t.Errorf("reader = %T, want *SystemReader", m.reader)
	}
	if _, ok := m.clock.(SystemClock); !ok {
		t.Errorf("clock = %T, want SystemClock", m.clock)
	}
	if m.ewma.HalfLife != 0 {
		t.Errorf("half-life = %v, want 0 (no smoothing) for a zero Config", m.ewma.HalfLife)
	}
}
