package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/shoalmesh/shoal/metrics"
)

// StateVersion is the major version of the node state encoding written by
// this build. A decoder accepts any minor version of its major version and
// ignores bytes past the fields it knows, so fields can be appended without
// breaking older agents.
const (
	StateVersion = 0x10 // major 1, minor 0
	stateMinLen  = 16
	// MaxStateLen bounds an encoded state; longer input is rejected.
	MaxStateLen = 64
)

// ErrBadState is returned (wrapped) for a node state that cannot be decoded.
var ErrBadState = errors.New("mesh: malformed node state")

// EncodeState appends the compact encoding of l to dst (see the package doc
// for the byte layout) and returns the extended slice.
func EncodeState(dst []byte, l metrics.Load) []byte {
	var b [stateMinLen]byte
	b[0] = StateVersion
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:], fixed100(l.CPUPercent, 10000))
	binary.BigEndian.PutUint16(b[4:], fixed100(l.MemPercent, 10000))
	binary.BigEndian.PutUint16(b[6:], fixed100(l.Cores, math.MaxUint16))
	binary.BigEndian.PutUint16(b[8:], fixed100(l.Load1, math.MaxUint16))
	binary.BigEndian.PutUint16(b[10:], encodeMiniFloat(l.NetRxBps))
	binary.BigEndian.PutUint16(b[12:], encodeMiniFloat(l.NetTxBps))
	binary.BigEndian.PutUint16(b[14:], encodeMiniFloat(float64(l.MemAvailable)))
	return append(dst, b[:]...)
}

// DecodeState decodes a node state. It never panics: short, long, unknown
// major versions and out-of-range values are errors wrapping ErrBadState.
func DecodeState(b []byte) (metrics.Load, error) {
	var l metrics.Load
	if len(b) < stateMinLen {
		return l, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadState, len(b), stateMinLen)
	}
	if len(b) > MaxStateLen {
		return l, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrBadState, len(b), MaxStateLen)
	}
	if b[0]>>4 != StateVersion>>4 {
		return l, fmt.Errorf("%w: major version %d, this agent reads %d", ErrBadState, b[0]>>4, StateVersion>>4)
	}
	cpu := binary.BigEndian.Uint16(b[2:])
	mem := binary.BigEndian.Uint16(b[4:])
	if cpu > 10000 || mem > 10000 {
		return l, fmt.Errorf("%w: cpu %d or memory %d above 100.00%%", ErrBadState, cpu, mem)
	}
	l.CPUPercent = float64(cpu) / 100
	l.MemPercent = float64(mem) / 100
	l.Cores = float64(binary.BigEndian.Uint16(b[6:])) / 100
	l.Load1 = float64(binary.BigEndian.Uint16(b[8:])) / 100
	l.NetRxBps = decodeMiniFloat(binary.BigEndian.Uint16(b[10:]))
	l.NetTxBps = decodeMiniFloat(binary.BigEndian.Uint16(b[12:]))
	l.MemAvailable = uint64(decodeMiniFloat(binary.BigEndian.Uint16(b[14:])))
	return l, nil
}

// fixed100 turns v into hundredths, clamped to [0, max]; NaN becomes 0.
func fixed100(v float64, max uint16) uint16 {
	if !(v > 0) { // also catches NaN
		return 0
	}
	x := math.Round(v * 100)
	if x >= float64(max) {
		return max
	}
	return uint16(x)
}

// A mini-float packs a non-negative figure into 16 bits: the top 5 bits are
// an exponent e and the low 11 bits a mantissa m, value = m << e. Relative
// error is below 0.1% for values of 1024 and more; the largest value is
// 2047 << 31 (about 4.4e12), and larger inputs saturate.
func encodeMiniFloat(v float64) uint16 {
	if !(v > 0) {
		return 0
	}
	if v >= 2047*math.Exp2(31) {
		return 31<<11 | 2047
	}
	x := uint64(math.Round(v))
	e := 0
	for x > 2047 {
		// round to nearest on the dropped bit
		x = (x + 1) >> 1
		e++
	}
	if x > 2047 { // rounding carried over
		x >>= 1
		e++
	}
	return uint16(e)<<11 | uint16(x)
}

func decodeMiniFloat(u uint16) float64 {
	e := u >> 11
	m := u & 2047
	return float64(uint64(m) << e)
}

// Urgent reports whether the load moved far enough from prev, the state
// this node last broadcast, that the mesh should hear of it at once rather
// than with the next wave of confirmations (within ConfirmInterval and a
// round; see confirmDue): CPU or memory by 5 percentage points, the cores
// available at all, the load average by a quarter (and at least 0.5), or a
// network rate or available memory by half (and at least 64 KiB/s or
// 64 MiB). A state that moved less (past a bucket, see Moved) rides the
// next wave in full, costing no packet of its own: on a busy host the
// load average and CPU cross a bucket nearly every sample, and each
// crossing sent at once was a broadcast off the wave.
func Urgent(prev, cur metrics.Load) bool {
	rel := func(a, b, floor, share float64) bool {
		d := math.Abs(a - b)
		return d >= floor && d >= share*math.Max(math.Abs(a), math.Abs(b))
	}
	return math.Abs(prev.CPUPercent-cur.CPUPercent) >= 5 ||
		math.Abs(prev.MemPercent-cur.MemPercent) >= 5 ||
		rel(prev.Load1, cur.Load1, 0.5, 0.25) ||
		prev.Cores != cur.Cores ||
		rel(prev.NetRxBps, cur.NetRxBps, 64<<10, 0.5) ||
		rel(prev.NetTxBps, cur.NetTxBps, 64<<10, 0.5) ||
		rel(float64(prev.MemAvailable), float64(cur.MemAvailable), 64<<20, 0.5)
}

// Moved reports whether the load moved past a bucket since prev was
// published: CPU or memory by a percentage point, the load average by 0.1,
// the cores available at all, or a network rate or available memory by 10%
// (and at least 1 KiB/s or 1 MiB). Smaller drifts are not worth a new state:
// they re-confirm the old one in an 8-byte refresh instead of a 23-byte entry.
func Moved(prev, cur metrics.Load) bool {
	rel := func(a, b, floor float64) bool {
		d := math.Abs(a - b)
		return d >= floor && d >= 0.1*math.Max(math.Abs(a), math.Abs(b))
	}
	return math.Abs(prev.CPUPercent-cur.CPUPercent) >= 1 ||
		math.Abs(prev.MemPercent-cur.MemPercent) >= 1 ||
		math.Abs(prev.Load1-cur.Load1) >= 0.1 ||
		prev.Cores != cur.Cores ||
		rel(prev.NetRxBps, cur.NetRxBps, 1024) ||
		rel(prev.NetTxBps, cur.NetTxBps, 1024) ||
		rel(float64(prev.MemAvailable), float64(cur.MemAvailable), 1<<20)
}
