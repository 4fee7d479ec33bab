package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrCgroupFormat is wrapped by errors about a cgroup v2 file whose contents
// cannot be parsed. The error names the file and quotes what it held.
var ErrCgroupFormat = errors.New("metrics: malformed cgroup v2 file")

// Default locations of the cgroup v2 mount and of this process's cgroup
// membership.
const (
	DefaultCgroupRoot     = "/sys/fs/cgroup"
	DefaultProcSelfCgroup = "/proc/self/cgroup"
)

// cgroupV2Path returns the cgroup v2 path from the contents of
// /proc/self/cgroup: the path on the "0::" line. ok is false when there is no
// such line (a cgroup v1-only host).
func cgroupV2Path(procSelfCgroup []byte) (path string, ok bool) {
	for line := range bytes.Lines(procSelfCgroup) {
		line = bytes.TrimRight(line, "\r\n")
		if rest, found := bytes.CutPrefix(line, []byte("0::")); found {
			return string(rest), true
		}
	}
	return "", false
}

// cgroupDir returns the directory under root that holds the cgroup v2 files of
// the cgroup at rel, or "" when there is no cgroup v2 hierarchy there. rel is
// confined to root: ".." cannot climb out. When rel does not exist under root
// (a cgroup namespace whose mount does not match the path the kernel reports)
// root itself is used, as it is then the process's own cgroup.
func cgroupDir(root, rel string) string {
	dir := filepath.Join(root, filepath.Clean("/"+rel))
	if isCgroupV2Dir(dir) {
		return dir
	}
	if dir != filepath.Clean(root) && isCgroupV2Dir(root) {
		return filepath.Clean(root)
	}
	return ""
}

// isCgroupV2Dir reports whether dir is a cgroup v2 directory: every one holds
// cgroup.controllers, and cgroup v1 and plain directories do not.
func isCgroupV2Dir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cgroup.controllers"))
	return err == nil
}

// readCgroupV2 reads the figures of the cgroup at rel under root. It returns
// nil and no error when there is no cgroup v2 hierarchy to read.
//
// Limits may sit on the cgroup itself or on any ancestor (a Kubernetes pod, a
// systemd slice), and the process is throttled or OOM-killed by whichever
// binds first. So the walk goes from the cgroup up to root and keeps:
//
//   - for CPU, the level with the smallest quota in cores, and that level's
//     usage (so the two always describe the same cgroup);
//   - for memory, the level whose working set is the largest fraction of its
//     memory.max, with that level's memory.current and inactive_file.
//
// Without a limit, usage is the cgroup's own.
func readCgroupV2(root, rel string) (*CgroupCounters, error) {
	return readCgroupV2With(osReadFile, root, rel)
}

// fileReader reads a whole file; ok is false, with no error, when it does
// not exist. What it returns may be valid only until its next call.
type fileReader func(path string) (data []byte, ok bool, err error)

// osReadFile is a fileReader on os.ReadFile.
func osReadFile(path string) ([]byte, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// readCgroupV2With is readCgroupV2 reading its files with read.
func readCgroupV2With(read fileReader, root, rel string) (*CgroupCounters, error) {
	dir := cgroupDir(root, rel)
	if dir == "" {
		return nil, nil
	}
	root = filepath.Clean(root)
	var c CgroupCounters
	cpuDir, memDir := dir, dir
	bestMemRatio := -1.0

	for d := dir; ; d = filepath.Dir(d) {
		if data, ok, err := readCgroupFile(read, d, "cpu.max"); err != nil {
			return nil, err
		} else if ok {
			cores, limited, err := parseCPUMax(data)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrCgroupFormat, filepath.Join(d, "cpu.max"), err)
			}
			if limited && (c.CPUQuotaCores == 0 || cores < c.CPUQuotaCores) {
				c.CPUQuotaCores, cpuDir = cores, d
			}
		}
		if data, ok, err := readCgroupFile(read, d, "memory.max"); err != nil {
			return nil, err
		} else if ok {
			limit, limited, err := parseMemoryMax(data)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrCgroupFormat, filepath.Join(d, "memory.max"), err)
			}
			if limited {
				current, inactive, err := readCgroupMemory(read, d)
				if err != nil {
					return nil, err
				}
				ws := CgroupCounters{MemCurrent: current, MemInactiveFile: inactive}.WorkingSet()
				if ratio := float64(ws) / float64(limit); ratio > bestMemRatio {
					bestMemRatio, memDir = ratio, d
					c.MemMax, c.MemCurrent, c.MemInactiveFile = limit, current, inactive
				}
			}
		}
		if d == root || len(d) <= len(root) {
			break
		}
	}

	if data, ok, err := readCgroupFile(read, cpuDir, "cpu.stat"); err != nil {
		return nil, err
	} else if ok {
		usec, found, err := flatKeyed(data, "usage_usec")
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCgroupFormat, filepath.Join(cpuDir, "cpu.stat"), err)
		}
		if found {
			c.CPUUsage = float64(usec) / 1e6
			c.HasCPUUsage = true
		}
	}
	if c.MemMax == 0 {
		current, inactive, err := readCgroupMemory(read, memDir)
		if err != nil {
			return nil, err
		}
		c.MemCurrent, c.MemInactiveFile = current, inactive
	}
	return &c, nil
}

// readCgroupMemory reads memory.current and inactive_file from memory.stat
// in dir; a missing file reads as zero.
func readCgroupMemory(read fileReader, dir string) (current, inactiveFile uint64, err error) {
	if data, ok, err := readCgroupFile(read, dir, "memory.current"); err != nil {
		return 0, 0, err
	} else if ok {
		if current, err = parseUint(data); err != nil {
			return 0, 0, fmt.Errorf("%w: %s: %w", ErrCgroupFormat, filepath.Join(dir, "memory.current"), err)
		}
	}
	if data, ok, err := readCgroupFile(read, dir, "memory.stat"); err != nil {
		return 0, 0, err
	} else if ok {
		if inactiveFile, _, err = flatKeyed(data, "inactive_file"); err != nil {
			return 0, 0, fmt.Errorf("%w: %s: %w", ErrCgroupFormat, filepath.Join(dir, "memory.stat"), err)
		}
	}
	return current, inactiveFile, nil
}

// readCgroupFile reads dir/name with read. ok is false, with no error, when
// the file does not exist (the controller is not enabled there, or it is
// the root).
func readCgroupFile(read fileReader, dir, name string) (data []byte, ok bool, err error) {
	data, ok, err = read(filepath.Join(dir, name))
	if err != nil {
		return nil, false, fmt.Errorf("metrics: reading cgroup file: %w", err)
	}
	return data, ok, nil
}

// parseCPUMax parses cpu.max ("$MAX $PERIOD", MAX "max" for no quota) into a
// quota in cores. limited is false when there is no quota.
func parseCPUMax(data []byte) (cores float64, limited bool, err error) {
	s := strings.TrimSpace(string(data))
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return 0, false, fmt.Errorf("holds %q, want \"<quota|max> <period>\"", s)
	}
	if fields[0] == "max" {
		return 0, false, nil
	}
	quota, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("holds %q: quota %q is neither \"max\" nor a whole number of microseconds", s, fields[0])
	}
	period := uint64(100000) // the kernel's default when only the quota is written
	if len(fields) == 2 {
		period, err = strconv.ParseUint(fields[1], 10, 64)
		if err != nil || period == 0 {
			return 0, false, fmt.Errorf("holds %q: period %q is not a positive whole number of microseconds", s, fields[1])
		}
	}
	return float64(quota) / float64(period), true, nil
}

// parseMemoryMax parses memory.max: a byte count, or "max" for no limit.
func parseMemoryMax(data []byte) (limit uint64, limited bool, err error) {
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("holds %q, want a byte count or \"max\"", s)
	}
	if v == math.MaxInt64 || v == 0 {
		// A limit of 0 cannot be a real limit on a live process; treat it
		// as none rather than reporting 100% use. MaxInt64 is how some
		// runtimes spell "unlimited".
		return 0, false, nil
	}
	return v, true, nil
}

// parseUint parses a file holding one whole number.
func parseUint(data []byte) (uint64, error) {
	s := strings.TrimSpace(string(data))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("holds %q, want a whole number", s)
	}
	return v, nil
}

// flatKeyed finds key in a flat-keyed cgroup file ("key value" per line).
// found is false when the key is absent.
func flatKeyed(data []byte, key string) (v uint64, found bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("key %s holds %q, want a whole number", key, val)
		}
		return v, true, nil
	}
	return 0, false, nil
}

// MemoryLimit returns the smallest memory.max on the path from this
// process's cgroup v2 up to the root (a container's, a pod's, a systemd
// slice's), the limit the process is OOM-killed by. ok is false without
// cgroup v2 or without a limit.
func MemoryLimit() (limit uint64, ok bool) {
	return memoryLimit(DefaultCgroupRoot, DefaultProcSelfCgroup)
}

func memoryLimit(root, procSelfCgroup string) (uint64, bool) {
	data, err := os.ReadFile(procSelfCgroup)
	if err != nil {
		return 0, false
	}
	rel, ok := cgroupV2Path(data)
	if !ok {
		return 0, false
	}
	dir := cgroupDir(root, rel)
	if dir == "" {
		return 0, false
	}
	root = filepath.Clean(root)
	var best uint64
	for d := dir; ; d = filepath.Dir(d) {
		if data, ok, err := readCgroupFile(osReadFile, d, "memory.max"); err == nil && ok {
			if v, limited, err := parseMemoryMax(data); err == nil && limited && (best == 0 || v < best) {
				best = v
			}
		}
		if d == root || len(d) <= len(root) {
			break
		}
	}
	return best, best > 0
}
