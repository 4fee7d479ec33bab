//go:build linux

package footprint

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	maps := strings.Join([]string{
		"00400000-00b38000 r-xp 00000000 fe:00 42                           /usr/bin/shoal",
		"00b38000-0131f000 r--p 00738000 fe:00 42                           /usr/bin/shoal",
		"0131f000-0138e000 rw-p 00f1f000 fe:00 42                           /usr/bin/shoal",
		"0138e000-013ba000 rw-p 00000000 00:00 0 ",
		"7f0000000000-7f0000001000 r--s 00000000 fe:00 42                   /usr/bin/shoal",
		"7f0000100000-7f0000200000 r--p 00000000 fe:00 77                   /usr/lib/other",
		"7ffd1234c000-7ffd1234e000 r-xp 00000000 00:00 0                    [vdso]",
	}, "\n")
	got, err := readOnlyMappings([]byte(maps), 42)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uintptr{{0x400000, 0xb38000}, {0xb38000, 0x131f000}}
	if !slices.Equal(got, want) {
		t.Errorf("readOnlyMappings = %x, want only the executable's code and read-only data %x", got, want)
	}
	if _, err := readOnlyMappings([]byte("zz-00b38000 r-xp 00000000 fe:00 42 /usr/bin/shoal"), 42); err == nil {
		t.Error("a malformed address range was accepted")
	}
}

// TestTrimExecutable trims this test binary's own pages: its file-backed
// resident memory falls, and code and read-only data still work afterwards
// (they are faulted back in from the page cache).
func TestTrimExecutable(t *testing.T) {
	sum := func() string { return fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Repeat("shoal", 1000)))) }
	want := sum()
	before, after, err := TrimExecutable()
	if err != nil {
		t.Fatal(err)
	}
	if before <= 0 || after >= before {
		t.Fatalf("RssFile %d KB before trimming, %d KB after; want it to fall", before>>10, after>>10)
	}
	t.Logf("RssFile %d KB -> %d KB", before>>10, after>>10)
	if got := sum(); got != want {
		t.Fatalf("sha256 after trimming = %s, want %s", got, want)
	}
}
