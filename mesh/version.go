package mesh

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/internal/atomicfile"
)

// Versions order what one origin says: every load confirmation and every
// election message a node sends carries the next value of its VersionClock,
// and a receiver never takes a version at or below one it holds (see the
// package doc, "Replay protection").
const (
	// VersionUnit is the clock resolution of versions. It is at most the
	// shortest gossip interval (10 ms), so a node that confirms its load
	// every round does not run its versions ahead of its clock, and a
	// restart without a data directory still starts above them.
	VersionUnit = 10 * time.Millisecond
	// versionReserve is how far ahead of the versions in use the floor
	// kept in the data directory is written: one write per half hour.
	versionReserve = uint64(time.Hour / VersionUnit)
	// VersionFile is the file in the data directory holding the floor.
	VersionFile = "version-floor"
)

// versionBase is the zero of the version clock. Versions are uvarints on
// the wire: counting from 2025 keeps them at 5 bytes until 2035.
var versionBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// VersionAt is the clock part of a version taken at t: VersionUnits since
// 2025-01-01 UTC (0 before).
func VersionAt(t time.Time) uint64 {
	d := t.Sub(versionBase)
	if d < 0 {
		return 0
	}
	return uint64(d / VersionUnit)
}

// VersionClock hands out this node's versions: a hybrid logical clock,
// each value max(previous + 1, VersionAt(now)), so versions rise strictly
// whatever the wall clock does while the node runs. Across restarts:
//
//   - with a data directory, a floor above every version handed out is
//     kept in VersionFile (written, synced and renamed before a version
//     past the old floor is used), and a restart starts above it even if
//     the wall clock went back;
//   - without one, a restart starts at the wall clock, which is above the
//     versions of the previous run unless the clock was set back by more
//     than the restart took (then this node's loads are refused until its
//     clock passes its old versions, or it is reaped and rejoins).
//
// Its methods are safe for concurrent use.
type VersionClock struct {
	mu    sync.Mutex
	path  string // "" without a data directory
	last  uint64
	floor uint64 // persisted: no version above it was handed out
	now   func() time.Time
}

// ErrVersionFile is wrapped when the persisted version floor is unreadable.
var ErrVersionFile = errors.New("mesh: version floor file")

// NewVersionClock reads the floor from dataDir (empty: no data directory)
// and returns a clock that starts above it and above now's clock reading.
// now may be nil (time.Now).
func NewVersionClock(dataDir string, now func() time.Time) (*VersionClock, error) {
	if now == nil {
		now = time.Now
	}
	c := &VersionClock{now: now}
	if dataDir != "" {
		c.path = filepath.Join(dataDir, VersionFile)
		b, err := os.ReadFile(c.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("%w %s: %v", ErrVersionFile, c.path, err)
		default:
			v, err := ParseVersionFloor(b)
			if err != nil {
				return nil, fmt.Errorf("%w %s: %v: remove it to start from the clock", ErrVersionFile, c.path, err)
			}
			c.last, c.floor = v, v
		}
	}
	return c, nil
}

// maxVersionFloor bounds a persisted floor.
const maxVersionFloor = MaxVersion

// ParseVersionFloor decodes the content of VersionFile: one decimal number
// and an optional newline, at most 32 bytes.
func ParseVersionFloor(b []byte) (uint64, error) {
	if len(b) > 32 {
		return 0, fmt.Errorf("%d bytes, not a version", len(b))
	}
	s := strings.TrimSuffix(string(b), "\n")
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > maxVersionFloor {
		return 0, fmt.Errorf("%q is not a version (a decimal number up to %d)", s, uint64(maxVersionFloor))
	}
	return v, nil
}

// Next returns the next version. An error means the new floor could not
// be persisted; the version is still good for this run (the clock guards
// the next one) and the caller should log it.
func (c *VersionClock) Next() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := max(c.last+1, VersionAt(c.now()))
	c.last = v
	if c.path == "" || v <= c.floor {
		return v, nil
	}
	floor := v + versionReserve
	if err := atomicfile.Write(c.path, []byte(strconv.FormatUint(floor, 10)+"\n")); err != nil {
		return v, fmt.Errorf("%w %s: %v", ErrVersionFile, c.path, err)
	}
	c.floor = floor
	return v, nil
}
