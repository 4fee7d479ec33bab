package footprint

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestSetGCDefaults(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	noLimit := func() (uint64, bool) { return 0, false }
	limit64M := func() (uint64, bool) { return 64 << 20, true }

	s := setGCDefaults(getenv, noLimit)
	if s.Percent != GCPercent || s.FromEnv || s.Limit != math.MaxInt64 || s.CgroupLimit != 0 {
		t.Errorf("no environment, no cgroup limit: %+v; want GOGC %d and no memory limit", s, GCPercent)
	}
	if got := debug.SetGCPercent(GCPercent); got != GCPercent {
		t.Errorf("GOGC in effect %d, want %d", got, GCPercent)
	}

	s = setGCDefaults(getenv, limit64M)
	want := int64(float64(64<<20) * LimitFraction)
	if s.Limit != want || s.CgroupLimit != 64<<20 {
		t.Errorf("cgroup limit 64 MiB: %+v; want a soft limit of %d", s, want)
	}
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Errorf("memory limit in effect %d, want %d", got, want)
	}

	// An operator's GOGC and GOMEMLIMIT win.
	debug.SetGCPercent(80)
	debug.SetMemoryLimit(1 << 30)
	env["GOGC"], env["GOMEMLIMIT"] = "80", "1GiB"
	s = setGCDefaults(getenv, limit64M)
	if !s.FromEnv || !s.LimitFromEnv || s.Percent != 80 || s.Limit != 1<<30 {
		t.Errorf("GOGC=80 GOMEMLIMIT=1GiB in the environment: %+v; want both kept", s)
	}
	if got := debug.SetGCPercent(80); got != 80 {
		t.Errorf("GOGC in effect %d, want the environment's 80", got)
	}
}

func TestSetProcsDefault(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(4)
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	if s := setProcsDefault(getenv, false); s.Procs != 1 || s.Previous != 4 || s.FromEnv {
		t.Errorf("no proxy, no GOMAXPROCS: %+v; want 1 processor (4 before)", s)
	}
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("GOMAXPROCS in effect %d, want 1", got)
	}

	// The forwarding proxy keeps the runtime's default.
	runtime.GOMAXPROCS(4)
	if s := setProcsDefault(getenv, true); s.Procs != 4 || !s.Proxy {
		t.Errorf("with the proxy: %+v; want the 4 processors kept", s)
	}
	if got := runtime.GOMAXPROCS(0); got != 4 {
		t.Errorf("with the proxy, GOMAXPROCS in effect %d, want 4", got)
	}

	// An operator's GOMAXPROCS wins (the runtime read it at start).
	env["GOMAXPROCS"] = "3"
	runtime.GOMAXPROCS(3)
	if s := setProcsDefault(getenv, false); s.Procs != 3 || !s.FromEnv {
		t.Errorf("GOMAXPROCS=3 in the environment: %+v; want 3 kept", s)
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS=3 in the environment: %d in effect, want 3", got)
	}
}
