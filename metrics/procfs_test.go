package metrics

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/shoalmesh/shoal/internal/testenv"
)

// TestKeptFilesAgreeWithGopsutil reads this machine through gopsutil, then
// from the kept /proc files, then through gopsutil again: the kept reading
// lies between the two for every counter, and equals them where nothing
// moves.
func TestKeptFilesAgreeWithGopsutil(t *testing.T) {
	if runtime.GOOS != "linux" {
		testenv.RequireOrSkip(t, "the kept files are /proc's, which only Linux has (elsewhere gopsutil is the only path)")
	}
	ctx := context.Background()
	slow := &SystemReader{NoKeptFiles: true}
	fast := &SystemReader{}
	for round := range 3 { // the second and third read kept files again
		before, err := slow.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fast.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after, err := slow.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(fast.files.files); n < 4 {
			t.Fatalf("round %d: %d files kept open, want at least /proc/stat, meminfo, loadavg and net/dev", round, n)
		}
		const tick = 1.0 / clockTicks
		between := func(what string, lo, v, hi, slack float64) {
			t.Helper()
			if v < lo-slack || v > hi+slack {
				t.Errorf("round %d: %s = %v, gopsutil read %v before and %v after", round, what, v, lo, hi)
			}
		}
		between("CPUTotal", before.CPUTotal, got.CPUTotal, after.CPUTotal, tick)
		between("CPUBusy", before.CPUBusy, got.CPUBusy, after.CPUBusy, tick)
		if got.MemTotal != before.MemTotal {
			t.Errorf("round %d: MemTotal = %d, gopsutil %d", round, got.MemTotal, before.MemTotal)
		}
		lo, hi := min(before.MemAvailable, after.MemAvailable), max(before.MemAvailable, after.MemAvailable)
		between("MemAvailable", float64(lo), float64(got.MemAvailable), float64(hi), 64<<20)
		if got.Load1 != before.Load1 && got.Load1 != after.Load1 {
			t.Errorf("round %d: Load1 = %v, gopsutil %v and %v", round, got.Load1, before.Load1, after.Load1)
		}
		if len(got.Net) != len(before.Net) {
			t.Errorf("round %d: interfaces %v, gopsutil %v", round, got.Net, before.Net)
		}
		for name, n := range got.Net {
			b, a := before.Net[name], after.Net[name]
			between(name+" rx", float64(b.RxBytes), float64(n.RxBytes), float64(a.RxBytes), 0)
			between(name+" tx", float64(b.TxBytes), float64(n.TxBytes), float64(a.TxBytes), 0)
		}
		if (got.Cgroup == nil) != (before.Cgroup == nil) {
			t.Fatalf("round %d: cgroup %+v, gopsutil path %+v", round, got.Cgroup, before.Cgroup)
		}
		if got.Cgroup != nil {
			g, b := *got.Cgroup, *before.Cgroup
			if g.CPUQuotaCores != b.CPUQuotaCores || g.MemMax != b.MemMax || g.HasCPUUsage != b.HasCPUUsage {
				t.Errorf("round %d: cgroup %+v, read by opening each file %+v", round, g, b)
			}
		}
	}
}

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name, in    string
		total, busy float64
		err         bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"current kernel", "cpu  100 20 30 800 50 5 5 0 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n", 10.10, 1.60, false},
		{"old kernel, four fields", "cpu 100 0 100 800\n", 10.00, 2.00, false},
		{"not the cpu line", "cpu0 1 2 3 4 5\n", 0, 0, true},
		{"a bad number", "cpu 1 2 x 4 5\n", 0, 0, true},
		{"empty", "", 0, 0, true},
	} {
		total, busy, err := parseProcStat([]byte(tc.in))
		if tc.err {
			if !errors.Is(err, errProcFormat) {
				t.Errorf("%s: err %v, want errProcFormat", tc.name, err)
			}
			continue
		}
		if err != nil || math.Abs(total-tc.total) > 1e-9 || math.Abs(busy-tc.busy) > 1e-9 {
			t.Errorf("%s: %v, %v, %v; want %v, %v", tc.name, total, busy, err, tc.total, tc.busy)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	total, avail, ok, err := parseMeminfo([]byte("MemTotal:       16318412 kB\nMemFree:         1000 kB\nMemAvailable:    8000000 kB\n"))
	if err != nil || !ok || total != 16318412*1024 || avail != 8000000*1024 {
		t.Errorf("current kernel: %d, %d, %v, %v", total, avail, ok, err)
	}
	if _, _, ok, err := parseMeminfo([]byte("MemTotal: 1000 kB\nMemFree: 10 kB\n")); err != nil || ok {
		t.Errorf("no MemAvailable (before 3.14): ok %v, err %v; want false, nil", ok, err)
	}
	if _, _, _, err := parseMeminfo([]byte("MemFree: 10 kB\n")); !errors.Is(err, errProcFormat) {
		t.Errorf("no MemTotal: err %v, want errProcFormat", err)
	}
	if _, _, _, err := parseMeminfo([]byte("MemTotal: lots kB\n")); err == nil || !strings.Contains(err.Error(), "lots") {
		t.Errorf("bad number: err %v, want one naming it", err)
	}
}

func TestParseLoadavg(t *testing.T) {
	if v, err := parseLoadavg([]byte("0.52 0.58 0.59 1/467 12345\n")); err != nil || v != 0.52 {
		t.Errorf("got %v, %v", v, err)
	}
	for _, in := range []string{"", "NaN 1 1", "-1 0 0", "x"} {
		if _, err := parseLoadavg([]byte(in)); !errors.Is(err, errProcFormat) {
			t.Errorf("%q: err %v, want errProcFormat", in, err)
		}
	}
}

func TestParseNetDev(t *testing.T) {
	in := "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"    lo: 5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0\n" +
		"  eth0:1234567 1000 0 0 0 0 0 0 7654321 900 0 0 0 0 0 0\n"
	got := map[string][2]uint64{}
	if err := parseNetDev([]byte(in), func(name string, rx, tx uint64) { got[name] = [2]uint64{rx, tx} }); err != nil {
		t.Fatal(err)
	}
	if got["lo"] != [2]uint64{5000, 5000} || got["eth0"] != [2]uint64{1234567, 7654321} || len(got) != 2 {
		t.Errorf("got %v", got)
	}
	bad := "h1\nh2\n  eth0: 1 2 3\n"
	if err := parseNetDev([]byte(bad), func(string, uint64, uint64) {}); err == nil || !strings.Contains(err.Error(), "eth0 has 3 fields") {
		t.Errorf("short line: err %v, want one naming eth0 and its fields", err)
	}
}

// TestOpenFilesRereadsFromTheStart: a kept file is read whole again on
// every call (a file rewritten in place shows its new contents), one larger
// than the buffer is read whole, one past the bound is an error, and a
// missing one is "not there", not an error.
func TestOpenFilesRereadsFromTheStart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	var o openFiles
	defer o.Close()
	if _, ok, err := o.read(p); ok || err != nil {
		t.Fatalf("missing file: ok %v, err %v; want false, nil", ok, err)
	}
	write := func(b []byte) {
		t.Helper()
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write([]byte("first"))
	for _, want := range [][]byte{[]byte("first"), []byte("second, longer"), bytes.Repeat([]byte("x"), 100<<10), []byte("short")} {
		if !bytes.Equal(want, []byte("first")) {
			write(want)
		}
		got, ok, err := o.read(p)
		if err != nil || !ok || !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes (%v, %v), want %d", len(got), ok, err, len(want))
		}
	}
	if len(o.files) != 1 {
		t.Errorf("%d files open, want the one kept", len(o.files))
	}
	// A kept descriptor that fails (a removed cgroup file answers ENODEV;
	// here one closed behind the reader's back) is opened again at once.
	o.files[p].Close()
	write([]byte("after a failed descriptor"))
	if got, ok, err := o.read(p); err != nil || !ok || string(got) != "after a failed descriptor" {
		t.Fatalf("after its descriptor failed: %q, %v, %v; want the file read through a new one", got, ok, err)
	}
	write(bytes.Repeat([]byte("y"), maxProcFile+1))
	if _, _, err := o.read(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: err %v, want one saying it is too large", err)
	}
}

// FuzzProcParsers: the /proc parsers take any bytes without panicking, and
// what they accept is consistent.
func FuzzProcParsers(f *testing.F) {
	f.Add([]byte("cpu  100 20 30 800 50 5 5 0 40 0\n"))
	f.Add([]byte("MemTotal: 1 kB\nMemAvailable: 2 kB\n"))
	f.Add([]byte("0.5 0.5 0.5 1/1 1\n"))
	f.Add([]byte("h\nh\n eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if total, busy, err := parseProcStat(b); err == nil && (busy < 0 || busy > total) {
			t.Errorf("busy %v outside 0..total %v", busy, total)
		}
		_, _, _, _ = parseMeminfo(b)
		if v, err := parseLoadavg(b); err == nil && (v < 0 || math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Errorf("load %v accepted", v)
		}
		_ = parseNetDev(b, func(name string, _, _ uint64) {
			if name == "" {
				t.Error("an interface without a name")
			}
		})
	})
}
