package prom

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// runtimeSamples are the runtime/metrics the Go collector reads, by the
// short names its table uses.
var runtimeSamples = map[string]string{
	"objects":       "/memory/classes/heap/objects:bytes",
	"unused":        "/memory/classes/heap/unused:bytes",
	"released":      "/memory/classes/heap/released:bytes",
	"free":          "/memory/classes/heap/free:bytes",
	"stacks":        "/memory/classes/heap/stacks:bytes",
	"osStacks":      "/memory/classes/os-stacks:bytes",
	"buckets":       "/memory/classes/profiling/buckets:bytes",
	"metaOther":     "/memory/classes/metadata/other:bytes",
	"mcacheInuse":   "/memory/classes/metadata/mcache/inuse:bytes",
	"mcacheFree":    "/memory/classes/metadata/mcache/free:bytes",
	"mspanInuse":    "/memory/classes/metadata/mspan/inuse:bytes",
	"mspanFree":     "/memory/classes/metadata/mspan/free:bytes",
	"other":         "/memory/classes/other:bytes",
	"total":         "/memory/classes/total:bytes",
	"allocsBytes":   "/gc/heap/allocs:bytes",
	"allocsObjects": "/gc/heap/allocs:objects",
	"frees":         "/gc/heap/frees:objects",
	"tinyAllocs":    "/gc/heap/tiny/allocs:objects",
	"heapObjects":   "/gc/heap/objects:objects",
	"goal":          "/gc/heap/goal:bytes",
	"gogc":          "/gc/gogc:percent",
	"gomemlimit":    "/gc/gomemlimit:bytes",
	"gomaxprocs":    "/sched/gomaxprocs:threads",
}

// goMetrics are client_golang's default Go collector's memstats-like
// metrics: name, help, type and the runtime/metrics summed into each.
var goMetrics = []struct {
	name, help string
	t          ValueType
	sum        []string
}{
	{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", GaugeValue, []string{"objects"}},
	{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", CounterValue, []string{"allocsBytes"}},
	{"go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", GaugeValue, []string{"buckets"}},
	{"go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", CounterValue, []string{"frees", "tinyAllocs"}},
	{"go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", GaugeValue, []string{"metaOther"}},
	{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", GaugeValue, []string{"objects"}},
	{"go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", GaugeValue, []string{"released", "free"}},
	{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", GaugeValue, []string{"objects", "unused"}},
	{"go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", GaugeValue, []string{"heapObjects"}},
	{"go_memstats_heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", GaugeValue, []string{"released"}},
	{"go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", GaugeValue, []string{"objects", "unused", "released", "free"}},
	{"go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", CounterValue, []string{"allocsObjects", "tinyAllocs"}},
	{"go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", GaugeValue, []string{"mcacheInuse"}},
	{"go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", GaugeValue, []string{"mcacheInuse", "mcacheFree"}},
	{"go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", GaugeValue, []string{"mspanInuse"}},
	{"go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", GaugeValue, []string{"mspanInuse", "mspanFree"}},
	{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", GaugeValue, []string{"goal"}},
	{"go_memstats_other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", GaugeValue, []string{"other"}},
	{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", GaugeValue, []string{"stacks"}},
	{"go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", GaugeValue, []string{"stacks", "osStacks"}},
	{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", GaugeValue, []string{"total"}},
	{"go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.", GaugeValue, []string{"gogc"}},
	{"go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.", GaugeValue, []string{"gomemlimit"}},
	{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.", GaugeValue, []string{"gomaxprocs"}},
}

type goCollector struct {
	descs            []*Desc
	gcDur, gor, info *Desc
	threads, lastGC  *Desc
	samples          []metrics.Sample
	index            map[string]int
}

// NewGoCollector is collectors.NewGoCollector with its default metrics.
func NewGoCollector() Collector {
	c := &goCollector{index: map[string]int{}}
	for _, m := range goMetrics {
		c.descs = append(c.descs, NewDesc(m.name, m.help, nil, nil))
	}
	c.gcDur = NewDesc("go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", nil, nil)
	c.gor = NewDesc("go_goroutines", "Number of goroutines that currently exist.", nil, nil)
	c.info = NewDesc("go_info", "Information about the Go environment.", []string{"version"}, nil)
	c.threads = NewDesc("go_threads", "Number of OS threads created.", nil, nil)
	c.lastGC = NewDesc("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", nil, nil)
	for short, name := range runtimeSamples {
		c.index[short] = len(c.samples)
		c.samples = append(c.samples, metrics.Sample{Name: name})
	}
	return c
}

func (c *goCollector) Describe(ch chan<- *Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	for _, d := range []*Desc{c.gcDur, c.gor, c.info, c.threads, c.lastGC} {
		ch <- d
	}
}

func (c *goCollector) Collect(ch chan<- Metric) {
	samples := make([]metrics.Sample, len(c.samples))
	copy(samples, c.samples)
	metrics.Read(samples)
	value := func(short string) float64 {
		v := samples[c.index[short]].Value
		switch v.Kind() {
		case metrics.KindUint64:
			return float64(v.Uint64())
		case metrics.KindFloat64:
			return v.Float64()
		}
		return 0
	}
	for i, m := range goMetrics {
		var v float64
		for _, s := range m.sum {
			v += value(s)
		}
		ch <- MustNewConstMetric(c.descs[i], m.t, v)
	}
	st := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&st)
	s := &summary{desc: c.gcDur, sum: st.PauseTotal.Seconds(), count: uint64(st.NumGC)}
	for i, q := range []float64{0, 0.25, 0.5, 0.75, 1} {
		s.quantiles = append(s.quantiles, [2]float64{q, st.PauseQuantiles[i].Seconds()})
	}
	ch <- s
	last := 0.0
	if st.NumGC > 0 {
		last = float64(st.LastGC.UnixNano()) / 1e9
	}
	ch <- MustNewConstMetric(c.lastGC, GaugeValue, last)
	ch <- MustNewConstMetric(c.gor, GaugeValue, float64(runtime.NumGoroutine()))
	n, _ := runtime.ThreadCreateProfile(nil)
	ch <- MustNewConstMetric(c.threads, GaugeValue, float64(n))
	ch <- MustNewConstMetric(c.info, GaugeValue, 1, runtime.Version())
}

// ProcessCollectorOpts are collectors.ProcessCollectorOpts (none are used:
// the collector reports this process).
type ProcessCollectorOpts struct{}

type processCollector struct {
	cpu, maxFDs, rx, tx, fds, rss, start, vsize, vmax *Desc
}

// NewProcessCollector is collectors.NewProcessCollector for this process,
// from /proc (on systems without it, it collects nothing).
func NewProcessCollector(ProcessCollectorOpts) Collector {
	return &processCollector{
		cpu:    NewDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", nil, nil),
		maxFDs: NewDesc("process_max_fds", "Maximum number of open file descriptors.", nil, nil),
		rx:     NewDesc("process_network_receive_bytes_total", "Number of bytes received by the process over the network.", nil, nil),
		tx:     NewDesc("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", nil, nil),
		fds:    NewDesc("process_open_fds", "Number of open file descriptors.", nil, nil),
		rss:    NewDesc("process_resident_memory_bytes", "Resident memory size in bytes.", nil, nil),
		start:  NewDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", nil, nil),
		vsize:  NewDesc("process_virtual_memory_bytes", "Virtual memory size in bytes.", nil, nil),
		vmax:   NewDesc("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", nil, nil),
	}
}

func (c *processCollector) Describe(ch chan<- *Desc) {
	for _, d := range []*Desc{c.cpu, c.maxFDs, c.rx, c.tx, c.fds, c.rss, c.start, c.vsize, c.vmax} {
		ch <- d
	}
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

func (c *processCollector) Collect(ch chan<- Metric) {
	if st, err := os.ReadFile("/proc/self/stat"); err == nil {
		if f := statFields(st); len(f) > 21 {
			num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
			// f[0] is field 3 (state): utime 14, stime 15, starttime 22,
			// vsize 23, rss 24.
			ch <- MustNewConstMetric(c.cpu, CounterValue, (num(11)+num(12))/userHZ)
			ch <- MustNewConstMetric(c.vsize, GaugeValue, num(20))
			ch <- MustNewConstMetric(c.rss, GaugeValue, num(21)*float64(os.Getpagesize()))
			if bt, ok := bootTime(); ok {
				ch <- MustNewConstMetric(c.start, GaugeValue, bt+num(19)/userHZ)
			}
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		ch <- MustNewConstMetric(c.fds, GaugeValue, float64(len(ents)))
	}
	if b, err := os.ReadFile("/proc/self/limits"); err == nil {
		if v, ok := softLimit(b, "Max open files"); ok {
			ch <- MustNewConstMetric(c.maxFDs, GaugeValue, v)
		}
		if v, ok := softLimit(b, "Max address space"); ok {
			ch <- MustNewConstMetric(c.vmax, GaugeValue, v)
		}
	}
	if b, err := os.ReadFile("/proc/self/net/dev"); err == nil {
		rx, tx := netDev(b)
		ch <- MustNewConstMetric(c.rx, CounterValue, rx)
		ch <- MustNewConstMetric(c.tx, CounterValue, tx)
	}
}

// statFields are the fields of /proc/PID/stat after the command name.
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func bootTime() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64)
			return n, err == nil
		}
	}
	return 0, false
}

// softLimit reads a soft limit from /proc/PID/limits; "unlimited" is the
// largest uint64, as client_golang reports it.
func softLimit(b []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		if f[0] == "unlimited" {
			return math.MaxUint64, true
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil
	}
	return 0, false
}

// netDev sums the received and transmitted bytes over the interfaces in
// /proc/PID/net/dev (the process's network namespace).
func netDev(b []byte) (rx, tx float64) {
	for line := range bytes.Lines(b) {
		_, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseFloat(f[0], 64)
		t, err2 := strconv.ParseFloat(f[8], 64)
		if err1 == nil && err2 == nil {
			rx += r
			tx += t
		}
	}
	return rx, tx
}
