package mesh

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
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
}

// watchStream wraps an accepted stream for the mesh labelled label.
func watchStream(c net.Conn, s *Stats, label string) net.Conn {
	return &truncWatch{Conn: c, s: s, label: label}
}

// maxWatchPrefix holds a label header (2 + 255) and an encrypted header
// (type and length, 5).
const maxWatchPrefix = 2 + 255 + 5

func (w *truncWatch) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if w.done {
		return n, err
	}
	if room := maxWatchPrefix - len(w.prefix); room > 0 {
		w.prefix = append(w.prefix, b[:min(n, room)]...)
	}
	w.total += uint64(n)
	if errors.Is(err, io.EOF) {
		w.done = true
		if truncatedStream(w.prefix, w.total, w.label) {
			w.s.drop(DropDecode)
		}
	}
	return n, err
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
