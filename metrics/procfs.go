package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// The sampler reads the same few files every second: /proc/stat,
// /proc/meminfo, /proc/loadavg, /proc/net/dev and the cgroup's files.
// gopsutil opens, reads and closes each on every call (and registers each
// with the runtime's poller on the way): about 40 of an idle agent's ~245
// system calls a second, and 228 allocations a sample. openFiles keeps them
// open and reads them again from the start (pread), which the kernel
// answers with the current figures; the parsers below read the fields
// gopsutil read, with the same units.

// clockTicks is USER_HZ, the unit of /proc/stat's times: 100 on every
// Linux architecture (the kernel fixes it for user space; gopsutil asks
// sysconf and gets 100).
const clockTicks = 100

// maxProcFile bounds what one read of a kept file may return: /proc/stat
// on a machine of 1,024 CPUs is about 150 KB.
const maxProcFile = 1 << 20

// openFiles keeps files open by path and reads each whole, from offset 0,
// into one buffer. A file that fails is closed and opened again on the
// next read, so a cgroup that went away and came back is followed. Safe for
// concurrent use; the bytes a read returns are valid until the next read.
type openFiles struct {
	mu    sync.Mutex
	files map[string]*os.File
	buf   []byte
}

// maxOpenFiles bounds the files kept open: the process's cgroup may change,
// and with it the paths (the set is dropped and reopened past it).
const maxOpenFiles = 32

// read returns the file's contents; ok is false, with no error, when it
// does not exist.
func (o *openFiles) read(path string) (data []byte, ok bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	data, ok, kept, err := o.readLocked(path)
	if err != nil && kept {
		// A descriptor kept from an earlier call can outlive its file: a
		// cgroup file removed (a controller turned off above it, the cgroup
		// removed and made again) answers ENODEV. Open it again once.
		data, ok, _, err = o.readLocked(path)
	}
	return data, ok, err
}

// readLocked reads path through its kept descriptor, opening it if there is
// none (kept tells which). A descriptor that fails is closed and forgotten.
func (o *openFiles) readLocked(path string) (data []byte, ok, kept bool, err error) {
	f := o.files[path]
	kept = f != nil
	if f == nil {
		if len(o.files) >= maxOpenFiles {
			o.closeLocked()
		}
		f, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, false, nil
		}
		if err != nil {
			return nil, false, false, err
		}
		if o.files == nil {
			o.files = map[string]*os.File{}
		}
		o.files[path] = f
	}
	if o.buf == nil {
		o.buf = make([]byte, 16<<10)
	}
	n := 0
	for {
		m, rerr := f.ReadAt(o.buf[n:], int64(n))
		n += m
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_ = f.Close()
			delete(o.files, path)
			if errors.Is(rerr, fs.ErrNotExist) {
				return nil, false, kept, nil
			}
			return nil, false, kept, rerr
		}
		if n < len(o.buf) {
			// ReadAt fills the buffer or ends at EOF; a short read without
			// EOF asks again.
			continue
		}
		if len(o.buf) >= maxProcFile {
			return nil, false, kept, fmt.Errorf("%s: larger than %d bytes", path, maxProcFile)
		}
		o.buf = append(o.buf, make([]byte, len(o.buf))...)
	}
	return o.buf[:n], true, kept, nil
}

func (o *openFiles) closeLocked() {
	for p, f := range o.files {
		_ = f.Close()
		delete(o.files, p)
	}
}

// Close closes every kept file.
func (o *openFiles) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closeLocked()
}

// errProcFormat wraps a /proc file that does not parse.
var errProcFormat = errors.New("unexpected format")

// parseProcStat reads the aggregate "cpu" line of /proc/stat: total CPU
// time in seconds (user, nice, system, idle, iowait, irq, softirq, steal;
// guest time is inside user and nice already) and busy time (total
// without idle and iowait).
func parseProcStat(data []byte) (total, busy float64, err error) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("%w: /proc/stat: first line %q is not the cpu line", errProcFormat, clipBytes(line))
	}
	var v [8]uint64 // fields missing on old kernels read as 0
	for i := 0; i < len(v) && i+1 < len(f); i++ {
		n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: /proc/stat: cpu field %d %q", errProcFormat, i+1, clipBytes(f[i+1]))
		}
		v[i] = n
	}
	var sum uint64
	for _, n := range v {
		sum += n
	}
	idle := v[3] + v[4]
	return float64(sum) / clockTicks, float64(sum-min(idle, sum)) / clockTicks, nil
}

// parseMeminfo reads MemTotal and MemAvailable (in bytes) from
// /proc/meminfo. ok is false when the kernel has no MemAvailable (before
// 3.14): gopsutil estimates it then, and the caller asks gopsutil.
func parseMeminfo(data []byte) (total, available uint64, ok bool, err error) {
	var haveTotal, haveAvail bool
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		key, rest, found := bytes.Cut(line, []byte{':'})
		if !found {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "MemTotal":
			dst, haveTotal = &total, true
		case "MemAvailable":
			dst, haveAvail = &available, true
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 || len(f) > 2 || len(f) == 2 && string(f[1]) != "kB" {
			return 0, 0, false, fmt.Errorf("%w: /proc/meminfo: %s %q", errProcFormat, key, clipBytes(rest))
		}
		n, perr := strconv.ParseUint(string(f[0]), 10, 64)
		if perr != nil || n > 1<<53 {
			return 0, 0, false, fmt.Errorf("%w: /proc/meminfo: %s %q", errProcFormat, key, clipBytes(rest))
		}
		if len(f) == 2 {
			n *= 1024
		}
		*dst = n
		if haveTotal && haveAvail {
			break
		}
	}
	if !haveTotal {
		return 0, 0, false, fmt.Errorf("%w: /proc/meminfo: no MemTotal", errProcFormat)
	}
	return total, available, haveAvail, nil
}

// parseLoadavg reads the 1-minute load average from /proc/loadavg.
func parseLoadavg(data []byte) (float64, error) {
	f := bytes.Fields(data)
	if len(f) == 0 {
		return 0, fmt.Errorf("%w: /proc/loadavg is empty", errProcFormat)
	}
	v, err := strconv.ParseFloat(string(f[0]), 64)
	if err != nil || v < 0 || v != v || v > 1e9 {
		return 0, fmt.Errorf("%w: /proc/loadavg: %q", errProcFormat, clipBytes(f[0]))
	}
	return v, nil
}

// parseNetDev reads each interface's received and sent bytes from
// /proc/net/dev (two header lines, then "name: rx_bytes rx_packets ...
// tx_bytes ..." with eight receive and eight transmit fields), calling fn
// for each.
func parseNetDev(data []byte, fn func(name string, rx, tx uint64)) error {
	for i := 0; len(data) > 0; i++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if i < 2 || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		name, rest, found := bytes.Cut(line, []byte{':'})
		name = bytes.TrimSpace(name)
		if !found || len(name) == 0 {
			return fmt.Errorf("%w: /proc/net/dev: line %q", errProcFormat, clipBytes(line))
		}
		f := bytes.Fields(rest)
		if len(f) < 16 {
			return fmt.Errorf("%w: /proc/net/dev: %s has %d fields, want 16", errProcFormat, clipBytes(name), len(f))
		}
		rx, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		tx, err2 := strconv.ParseUint(string(f[8]), 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%w: /proc/net/dev: %s byte counters %q, %q", errProcFormat, clipBytes(name), clipBytes(f[0]), clipBytes(f[8]))
		}
		fn(string(name), rx, tx)
	}
	return nil
}

// clipBytes shortens what an error quotes from a file.
func clipBytes(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
