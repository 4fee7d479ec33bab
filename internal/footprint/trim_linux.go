//go:build linux

package footprint

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const trimSupported = true

// TrimExecutable tells the kernel that this process no longer needs the
// pages of its own executable's read-only mappings (code, read-only data)
// that are in its page tables: madvise(MADV_DONTNEED) on each of them.
//
// Why: a Go program's start-up (every linked package's init, flag parsing,
// the first join) touches code spread over most of the binary, and the
// kernel maps 64 KB around every page fault in a file mapping, so an agent
// ends up with 80-90% of its binary resident although an idle agent runs a
// small part of it. The pages stay in the page cache (shared with every
// other process running the binary, and reclaimable); a page the agent
// runs again is faulted back in from there. Only mappings that are not
// writable are touched: their contents are the file's, so dropping them
// loses nothing. RssFile before and after is returned.
func TrimExecutable() (before, after int64, err error) {
	st, err := os.Stat("/proc/self/exe")
	if err != nil {
		return 0, 0, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, errors.New("footprint: no inode for /proc/self/exe")
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, 0, err
	}
	regions, err := readOnlyMappings(maps, sys.Ino)
	if err != nil {
		return 0, 0, err
	}
	if len(regions) == 0 {
		return 0, 0, errors.New("footprint: no read-only mapping of the executable in /proc/self/maps")
	}
	before = rssFile()
	for _, r := range regions {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, r[0], r[1]-r[0], syscall.MADV_DONTNEED); e != 0 {
			return before, rssFile(), fmt.Errorf("footprint: madvise %#x-%#x: %w", r[0], r[1], e)
		}
	}
	return before, rssFile(), nil
}

// readOnlyMappings returns [start, end) of every private mapping in maps
// (the format of /proc/PID/maps) of the file with inode ino that is not
// writable.
func readOnlyMappings(maps []byte, ino uint64) ([][2]uintptr, error) {
	var out [][2]uintptr
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue // anonymous
		}
		perms := f[1]
		if len(perms) != 4 || perms[1] != '-' || perms[3] != 'p' {
			continue // writable (data, bss) or shared
		}
		if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != ino || ino == 0 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("footprint: malformed line in maps: %q", sc.Text())
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			return nil, fmt.Errorf("footprint: malformed address range in maps: %q", f[0])
		}
		out = append(out, [2]uintptr{uintptr(a), uintptr(b)})
	}
	return out, sc.Err()
}

// rssFile is RssFile from /proc/self/status, in bytes (0 when unreadable).
func rssFile() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			f := strings.Fields(string(v))
			if len(f) == 2 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}
