package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"
)

// DropReason says why a packet or stream at the gossip port was dropped.
// Stats.DroppedBy counts each; /metrics shows them as
// shoal_gossip_dropped_total{reason}.
type DropReason int

// Why packets and streams are dropped, Shoal's and memberlist's alike.
const (
	// DropDecrypt: not sealed with an installed key (a wrong key, garbage,
	// or plaintext while gossip encryption is on).
	DropDecrypt DropReason = iota
	// DropLabel: another mesh's label, or a malformed label header.
	DropLabel
	// DropDecode: opened but malformed (truncated, bad framing, a bad
	// field), or an empty datagram.
	DropDecode
	// DropOversize: above a size bound (MaxPacketSize; memberlist's 20 MB
	// bound on a stream's state).
	DropOversize
	// DropNotMember: an election message from a sender that is not a
	// member (or claims to be this node).
	DropNotMember
	// DropReplay: an election message refused by the anti-replay window or
	// the freshness bound (also counted in Stats.StaleElections).
	DropReplay
	// DropQueueFull: memberlist's handler queue or push/pull limit was
	// full (a flood of authentic messages: a key holder, or a replay).
	DropQueueFull
	// DropTimeout: a stream that sent too little before memberlist's
	// deadline.
	DropTimeout

	NumDropReasons = iota
)

var dropNames = [NumDropReasons]string{"decrypt", "label", "decode", "oversize", "not_member", "replay", "queue_full", "timeout"}

// String is the reason's label value in /metrics.
func (r DropReason) String() string {
	if r < 0 || int(r) >= NumDropReasons {
		return "unknown"
	}
	return dropNames[r]
}

// drop counts one packet or stream dropped for reason r.
func (s *Stats) drop(r DropReason) {
	s.Dropped.Add(1)
	s.DroppedBy[r].Add(1)
}

// openDropReason classifies an error of Sealer.Open.
func openDropReason(err error) DropReason {
	switch {
	case errors.Is(err, ErrNoKey), errors.Is(err, ErrPlaintext):
		return DropDecrypt
	case errors.Is(err, errOversize):
		return DropOversize
	case errors.Is(err, errWrongLabel):
		return DropLabel
	}
	return DropDecode
}

// memberlistDrop classifies one of memberlist's log lines (without its
// level tag): whether it reports a packet or stream it dropped, and why.
// memberlist (v0.7) keeps no counters of what it drops; it logs each one.
// TestMemberlistDropsAreCounted sends each kind to a real node, so a
// memberlist upgrade that rewords a line fails there.
func memberlistDrop(msg string) (DropReason, bool) {
	m, ok := strings.CutPrefix(msg, "memberlist: ")
	if !ok {
		return 0, false
	}
	has := func(s string) bool { return strings.Contains(m, s) }
	r, ok := memberlistDropLine(m, has)
	if ok && r != DropOversize && has("i/o timeout") {
		// A stream that stalled, whichever step was waiting for it.
		return DropTimeout, true
	}
	return r, ok
}

func memberlistDropLine(m string, has func(string) bool) (DropReason, bool) {
	switch {
	case strings.HasPrefix(m, "Decrypt packet failed"):
		return DropDecrypt, true
	case strings.HasPrefix(m, "discarding packet with unacceptable label"),
		strings.HasPrefix(m, "discarding stream with unacceptable label"),
		strings.HasPrefix(m, "unexpected double packet label header"),
		strings.HasPrefix(m, "unexpected double stream label header"),
		strings.HasPrefix(m, "failed to receive and remove the stream label header"),
		strings.HasPrefix(m, "cannot decode label"),
		strings.HasPrefix(m, "label header cannot be empty"):
		return DropLabel, true
	case strings.HasPrefix(m, "handler queue full"), strings.HasPrefix(m, "Too many pending push/pull requests"):
		return DropQueueFull, true
	case strings.HasPrefix(m, "failed to receive: "):
		switch {
		case has("decrypt"), has("not encrypted"), has("encryption is not configured"):
			return DropDecrypt, true
		case has("larger than limit"):
			return DropOversize, true
		}
		return DropDecode, true
	case strings.HasPrefix(m, "Got invalid checksum"),
		strings.HasPrefix(m, "missing message type byte"),
		strings.HasPrefix(m, "msg type ("), strings.HasPrefix(m, "Message type ("),
		strings.HasPrefix(m, "Failed to decode"),
		strings.HasPrefix(m, "Failed to decompress"),
		strings.HasPrefix(m, "Compound request had"),
		strings.HasPrefix(m, "Failed to receive user message"),
		strings.HasPrefix(m, "Failed to read remote state"),
		strings.HasPrefix(m, "Received invalid msgType"):
		return DropDecode, true
	}
	return 0, false
}

// maxStreamState is memberlist's bound on the state a stream may declare
// (maxPushStateBytes in memberlist v0.7): above it memberlist logs the
// drop itself.
const maxStreamState = 20 << 20

// truncWatch follows the first bytes of an inbound memberlist stream, as
// memberlist reads them, to count the one kind of drop memberlist does not
// log: a stream that ends (EOF) inside its first message after the label
// header, before the encrypted payload it declared has arrived.
// memberlist then gets io.EOF, which it drops silently; every other
// failure it logs, and memberlistDrop counts.
type truncWatch struct {
	net.Conn
	s      *Stats
	label  string
	prefix []byte // the first bytes read, up to the encrypted header
	total  uint64
	done   bool

	budget   *semaphore.Weighted
	sized    bool  // the declared state was looked for
	reserved int64 // taken from budget until Close
	refused  error // the state did not fit: every later Read fails
	closed   sync.Once
}

// watchStream wraps an accepted stream for the mesh labelled label. The
// state it declares is taken from budget while memberlist reads it.
func watchStream(c net.Conn, s *Stats, label string, budget *semaphore.Weighted) net.Conn {
	return &truncWatch{Conn: c, s: s, label: label, budget: budget}
}

// MaxInboundStreamBytes bounds the encrypted state that inbound streams
// may declare at once, summed over the streams memberlist is reading.
// memberlist reads a stream's whole declared state (up to its own 20 MB
// bound) before it tries to open it, and takes any number of streams at
// once: without this bound a few connections of garbage cost hundreds of
// megabytes. A stream whose state does not fit fails before its body is
// read (memberlist logs "larger than limit", counted as oversize). Room
// for one stream of memberlist's largest state, or for about a hundred
// push/pulls of a 1,000-node mesh at once.
const MaxInboundStreamBytes = 24 << 20

// errStreamBudget fails a stream whose declared state does not fit in
// MaxInboundStreamBytes beside the streams being read. Its text holds
// "larger than limit", which memberlistDrop counts as oversize.
type errStreamBudget struct{ declared uint64 }

func (e errStreamBudget) Error() string {
	return fmt.Sprintf("stream state of %d bytes: larger than limit of %d bytes of inbound streams in flight", e.declared, MaxInboundStreamBytes)
}

// maxWatchPrefix holds a label header (2 + 255) and an encrypted header
// (type and length, 5).
const maxWatchPrefix = 2 + 255 + 5

func (w *truncWatch) Read(b []byte) (int, error) {
	if w.refused != nil {
		return 0, w.refused
	}
	n, err := w.Conn.Read(b)
	if w.done {
		return n, err
	}
	if room := maxWatchPrefix - len(w.prefix); room > 0 {
		w.prefix = append(w.prefix, b[:min(n, room)]...)
	}
	w.total += uint64(n)
	if !w.sized && w.budget != nil {
		declared, known, final := streamDeclared(w.prefix)
		switch {
		case known && declared <= maxStreamState:
			w.sized = true
			if !w.budget.TryAcquire(int64(declared)) {
				// The bytes read so far go up as they are (memberlist
				// reads the label header from them, and io.ReadFull
				// would drop an error that came with them); the next
				// read, for the state's body, fails.
				w.done = true
				w.refused = errStreamBudget{declared}
				return n, err
			}
			w.reserved = int64(declared)
		case final || known:
			w.sized = true // not encrypted, or above memberlist's own bound
		}
	}
	if errors.Is(err, io.EOF) {
		w.done = true
		if truncatedStream(w.prefix, w.total, w.label) {
			w.s.drop(DropDecode)
		}
	}
	return n, err
}

// Close closes the stream and gives back what its state took from the
// budget.
func (w *truncWatch) Close() error {
	w.closed.Do(func() {
		if w.reserved > 0 {
			w.budget.Release(w.reserved)
		}
	})
	return w.Conn.Close()
}

// streamDeclared reads the state an inbound memberlist stream declares
// from its first bytes: after a label header, an encrypted message's type
// and 4-byte length. known reports a length read; final, without one,
// that none will come (not an encrypted message, an empty label).
func streamDeclared(p []byte) (declared uint64, known, final bool) {
	if len(p) > 0 && p[0] == 244 { // memberlist's label header
		if len(p) < 2 {
			return 0, false, false
		}
		if p[1] == 0 {
			return 0, false, true
		}
		if len(p) < 2+int(p[1]) {
			return 0, false, false
		}
		p = p[2+int(p[1]):]
	}
	const encryptMsg = 10
	switch {
	case len(p) == 0:
		return 0, false, false
	case p[0] != encryptMsg:
		return 0, false, true
	case len(p) < 5:
		return 0, false, false
	}
	return uint64(binary.BigEndian.Uint32(p[1:5])), true, true
}

// truncatedStream reports whether a stream of total bytes that starts with
// prefix ended where memberlist drops it without a word: after a label
// header it accepts, before its first message's type byte or inside an
// encrypted message shorter than declared.
func truncatedStream(prefix []byte, total uint64, label string) bool {
	if total == 0 {
		return false // an empty connection carried nothing
	}
	p, off := prefix, uint64(0)
	if p[0] == 244 { // memberlist's label header
		if len(p) < 2 || p[1] == 0 || len(p) < 2+int(p[1]) {
			return false // memberlist logs a truncated or empty label
		}
		if string(p[2:2+int(p[1])]) != label {
			return false // memberlist logs the wrong label
		}
		off = 2 + uint64(p[1])
		p = p[off:]
	} else if label != "" {
		return false // memberlist logs the missing label
	}
	if total == off {
		return true // a label and nothing after it
	}
	const encryptMsg = 10
	if p[0] != encryptMsg {
		return false // memberlist logs what it cannot take
	}
	if total < off+5 {
		return true // inside the length
	}
	declared := uint64(binary.BigEndian.Uint32(p[1:5]))
	if declared > maxStreamState {
		return false // memberlist logs the oversize claim
	}
	return total < off+5+declared
}
