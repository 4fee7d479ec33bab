// Package footprint keeps what a long-running agent process costs its host
// small: the garbage collector's defaults for a small, steady heap, one
// processor for an agent that forwards no traffic, and trimming the
// executable's pages that only start-up touched.
//
// Only the agent command uses it (cmd/shoal agent): the settings are
// process-wide, and tests that run many agents in one process keep Go's
// defaults.
package footprint

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// GCPercent is the agent's GOGC default. An idle agent's live heap is a
// few MB and it allocates tens of KB a second: at 50 the heap may grow to
// 1.5x the live heap instead of 2x (and the runtime's 4 MB minimum heap
// becomes 2 MB), for a collection every few seconds instead of every
// half minute, each taking well under a millisecond of CPU. See
// docs/benchmarks.md (footprint) for the measurement behind the figure.
const GCPercent = 50

// LimitFraction is the share of a cgroup's memory.max the agent gives the Go
// runtime as its soft memory limit (GOMEMLIMIT): the rest is for what the
// limit does not count and the cgroup does (the executable's pages, page
// cache of files the agent writes, kernel memory of its sockets).
const LimitFraction = 0.75

// GCSettings are what SetGCDefaults did.
type GCSettings struct {
	Percent       int   // GOGC in effect
	Limit         int64 // GOMEMLIMIT in effect, math.MaxInt64 for none
	FromEnv       bool  // GOGC came from the environment
	LimitFromEnv  bool  // GOMEMLIMIT came from the environment
	CgroupLimit   int64 // the cgroup's memory.max the limit derives from, 0 for none
	PreviousLimit int64
}

// SetGCDefaults sets GOGC to GCPercent and, inside a cgroup with a memory
// limit, GOMEMLIMIT to LimitFraction of it. Either is left alone when the
// environment sets it (GOGC, GOMEMLIMIT), so an operator can still choose.
func SetGCDefaults() GCSettings {
	return setGCDefaults(os.Getenv, metrics.MemoryLimit)
}

func setGCDefaults(getenv func(string) string, cgroupLimit func() (uint64, bool)) GCSettings {
	var s GCSettings
	if getenv("GOGC") != "" {
		s.FromEnv = true
		s.Percent = debug.SetGCPercent(-1)
		debug.SetGCPercent(s.Percent)
	} else {
		debug.SetGCPercent(GCPercent)
		s.Percent = GCPercent
	}
	s.PreviousLimit = debug.SetMemoryLimit(-1)
	s.Limit = s.PreviousLimit
	if getenv("GOMEMLIMIT") != "" {
		s.LimitFromEnv = true
		return s
	}
	if lim, ok := cgroupLimit(); ok && lim < math.MaxInt64 {
		s.CgroupLimit = int64(lim)
		s.Limit = int64(float64(lim) * LimitFraction)
		debug.SetMemoryLimit(s.Limit)
	}
	return s
}

// ProcsSettings are what SetProcsDefault did.
type ProcsSettings struct {
	Procs    int  // GOMAXPROCS in effect
	Previous int  // GOMAXPROCS before (the runtime's default: the CPUs the process may use)
	FromEnv  bool // GOMAXPROCS came from the environment
	Proxy    bool // left at the runtime's default for the forwarding proxy
}

// SetProcsDefault runs the agent's Go code on one processor (GOMAXPROCS=1)
// unless the environment sets GOMAXPROCS or the agent runs the forwarding
// proxy (proxy true), whose throughput scales with cores.
//
// An idle agent's work is a few packets, timers and /proc reads a second,
// each a few microseconds; with more than one processor the runtime wakes a
// second thread to look for work beside most of those events (the spinning
// M of findRunnable), and that waking and sleeping was about half of an
// idle agent's CPU profile. With one processor that goes: an idle agent in
// a mesh of 30 used 0.604% of a core instead of 0.757% (serf, beside it in
// the same run: 0.360%); see docs/benchmarks.md (footprint). Anything that
// needs more, such as many picks a second over the HTTP API, gets it by
// setting GOMAXPROCS.
func SetProcsDefault(proxy bool) ProcsSettings {
	return setProcsDefault(os.Getenv, proxy)
}

func setProcsDefault(getenv func(string) string, proxy bool) ProcsSettings {
	s := ProcsSettings{Previous: runtime.GOMAXPROCS(0), FromEnv: getenv("GOMAXPROCS") != "", Proxy: proxy}
	s.Procs = s.Previous
	if s.FromEnv || proxy {
		return s
	}
	runtime.GOMAXPROCS(1)
	s.Procs = 1
	return s
}

// Trims: when the trimmer drops the executable's pages. The first comes
// once the agent has started and joined; the second after the first
// minutes (elections, the first push/pull, the first API calls); then
// rarely, for code a rare event ran.
var (
	trimAt    = []time.Duration{20 * time.Second, 2 * time.Minute}
	trimEvery = 30 * time.Minute
)

// StartTrimmer trims the executable's pages (TrimExecutable) on the
// schedule above until ctx ends. It does nothing where trimming is not
// supported.
func StartTrimmer(ctx context.Context, log *slog.Logger) {
	if !trimSupported {
		return
	}
	go func() {
		start := time.Now()
		next := 0
		t := time.NewTimer(trimAt[0])
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			before, after, err := TrimExecutable()
			if err != nil {
				log.Debug("footprint: trimming the executable's pages failed", "err", err)
				return
			}
			log.Debug("footprint: executable pages trimmed", "rss_file_before_kb", before>>10, "rss_file_after_kb", after>>10)
			next++
			wait := trimEvery
			if next < len(trimAt) {
				wait = trimAt[next] - time.Since(start)
			}
			t.Reset(max(wait, time.Second))
		}
	}()
}
