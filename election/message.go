package election

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MsgType is the kind of a Message.
type MsgType uint8

// The message types. Their numbers are part of the wire format.
const (
	// MsgChallenge: a candidate asks a higher rank whether it is alive.
	MsgChallenge MsgType = 1
	// MsgAnswer: a higher rank tells a candidate that it takes over, or
	// (RefHolder set) who the coordinator is.
	MsgAnswer MsgType = 2
	// MsgCoordinator: a claim of term Term by From, or (Acting) the
	// announcement of an acting coordinator.
	MsgCoordinator MsgType = 3
	// MsgAck: From promises Term to To; RefTerm/RefHolder is the promise
	// it held before.
	MsgAck MsgType = 4
	// MsgNack: From refuses To's Term; RefTerm/RefHolder is the promise it
	// holds; Outranked means From outranks To and runs itself.
	MsgNack MsgType = 5
)

var msgTypeNames = [...]string{"", "Challenge", "Answer", "Coordinator", "Ack", "Nack"}

func (t MsgType) String() string {
	if t >= MsgChallenge && t <= MsgNack {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

func (t MsgType) valid() bool { return t >= MsgChallenge && t <= MsgNack }

// Message is one election message. From and To are member names.
type Message struct {
	Type      MsgType
	From      string
	To        string
	Term      uint64
	Acting    bool // MsgCoordinator only: the sender already acts under Term
	Outranked bool // MsgNack only: the sender outranks To and runs itself
	NoQuorum  bool // MsgNack only: the sender sees no quorum and promises nothing
	// Lease marks lease traffic. On an Acting Coordinator: a renewal,
	// RefTerm the sender's tick when it sent it (its stamp). On an Ack: a
	// grant of the renewal stamped RefTerm. On a Nack: the sender holds a
	// lease it granted to RefHolder under RefTerm, who acts.
	Lease     bool
	RefTerm   uint64 // MsgAnswer, MsgAck, MsgNack: see the type
	RefHolder string // MsgAnswer, MsgAck, MsgNack: see the type
}

func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s term=%d", m.From, m.To, m.Type, m.Term)
	if m.Acting {
		b.WriteString(" acting")
	}
	if m.Outranked {
		b.WriteString(" outranked")
	}
	if m.NoQuorum {
		b.WriteString(" no-quorum")
	}
	if m.Lease {
		b.WriteString(" lease")
		if m.Type != MsgNack {
			fmt.Fprintf(&b, " stamp=%d", m.RefTerm)
			return b.String()
		}
	}
	if m.RefHolder != "" || m.RefTerm != 0 {
		fmt.Fprintf(&b, " ref=%d/%s", m.RefTerm, m.RefHolder)
	}
	return b.String()
}

// Wire format limits.
const (
	// WireVersion is the first byte of every encoded message.
	WireVersion = 1
	// MaxNameLen is the longest member name, in bytes.
	MaxNameLen = 255
	// MaxMessageSize is the longest encoded message: three header bytes,
	// two uvarint terms of up to 10 bytes, three names of up to 2+255.
	MaxMessageSize = 3 + 2*binary.MaxVarintLen64 + 3*(2+MaxNameLen)
	// TermLimit bounds every term and stamp a message or a restored
	// HardState may carry. A claim goes one above the highest term seen:
	// without a bound, one message with term 2^64-1 (or such a state
	// file) would make a node's next claim wrap to 0.
	TermLimit = 1 << 62
)

const (
	flagActing    = 1 << 0
	flagOutranked = 1 << 1
	flagNoQuorum  = 1 << 2
	flagLease     = 1 << 3
)

// Errors of Marshal and Unmarshal. Unmarshal wraps them with what was wrong.
var (
	ErrTooLarge   = errors.New("election: message too large")
	ErrBadMessage = errors.New("election: malformed message")
)

func (m *Message) check() error {
	switch {
	case !m.Type.valid():
		return fmt.Errorf("%w: unknown type %d", ErrBadMessage, uint8(m.Type))
	case m.Acting && m.Type != MsgCoordinator:
		return fmt.Errorf("%w: acting flag on %s", ErrBadMessage, m.Type)
	case (m.Outranked || m.NoQuorum) && m.Type != MsgNack:
		return fmt.Errorf("%w: Nack flag on %s", ErrBadMessage, m.Type)
	case m.Lease && (m.Type == MsgChallenge || m.Type == MsgAnswer || m.Type == MsgCoordinator && !m.Acting):
		return fmt.Errorf("%w: lease flag on %s", ErrBadMessage, m.Type)
	case m.RefTerm != 0 && (m.Type == MsgChallenge || m.Type == MsgCoordinator && !m.Lease):
		return fmt.Errorf("%w: reference on %s", ErrBadMessage, m.Type)
	case m.RefHolder != "" && (m.Type == MsgChallenge || m.Type == MsgCoordinator || m.Type == MsgAck && m.Lease):
		return fmt.Errorf("%w: reference holder on %s", ErrBadMessage, m.Type)
	case m.Term > TermLimit || m.RefTerm > TermLimit:
		return fmt.Errorf("%w: term %d or reference %d above the limit %d", ErrBadMessage, m.Term, m.RefTerm, uint64(TermLimit))
	}
	for _, f := range [...]struct {
		name, v  string
		required bool
	}{{"from", m.From, true}, {"to", m.To, true}, {"ref holder", m.RefHolder, false}} {
		if f.v == "" && f.required {
			return fmt.Errorf("%w: empty %s", ErrBadMessage, f.name)
		}
		if len(f.v) > MaxNameLen {
			return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, f.name, len(f.v), MaxNameLen)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s is not UTF-8", ErrBadMessage, f.name)
		}
	}
	return nil
}

// Marshal encodes m in the layout described in the package doc. It fails
// (ErrBadMessage, ErrTooLarge) on a message that Unmarshal would refuse.
func (m Message) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 16+len(m.From)+len(m.To)+len(m.RefHolder))
	var flags byte
	if m.Acting {
		flags |= flagActing
	}
	if m.Outranked {
		flags |= flagOutranked
	}
	if m.NoQuorum {
		flags |= flagNoQuorum
	}
	if m.Lease {
		flags |= flagLease
	}
	b = append(b, WireVersion, byte(m.Type), flags)
	b = binary.AppendUvarint(b, m.Term)
	b = appendString(b, m.From)
	b = appendString(b, m.To)
	b = binary.AppendUvarint(b, m.RefTerm)
	b = appendString(b, m.RefHolder)
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Unmarshal decodes one message. It never panics: any input that is not
// exactly the canonical encoding of a valid message (minimal varints, known
// type and flags, names within MaxNameLen, no trailing bytes) is refused with
// ErrBadMessage or ErrTooLarge, wrapped with the reason.
func Unmarshal(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageSize {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	if len(b) < 3 {
		return m, fmt.Errorf("%w: %d bytes, shorter than the header", ErrBadMessage, len(b))
	}
	if b[0] != WireVersion {
		return m, fmt.Errorf("%w: version %d, want %d", ErrBadMessage, b[0], WireVersion)
	}
	m.Type = MsgType(b[1])
	flags := b[2]
	if flags&^(flagActing|flagOutranked|flagNoQuorum|flagLease) != 0 {
		return m, fmt.Errorf("%w: unknown flags %#x", ErrBadMessage, flags)
	}
	m.Acting = flags&flagActing != 0
	m.Outranked = flags&flagOutranked != 0
	m.NoQuorum = flags&flagNoQuorum != 0
	m.Lease = flags&flagLease != 0
	d := decoder{b: b[3:]}
	m.Term = d.uvarint("term")
	m.From = d.string("from")
	m.To = d.string("to")
	m.RefTerm = d.uvarint("ref term")
	m.RefHolder = d.string("ref holder")
	if d.err != nil {
		return Message{}, d.err
	}
	if len(d.b) != 0 {
		return Message{}, fmt.Errorf("%w: %d trailing bytes", ErrBadMessage, len(d.b))
	}
	if err := m.check(); err != nil {
		return Message{}, err
	}
	return m, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint in %s", ErrBadMessage, field)
		return 0
	}
	if n != uvarintLen(v) {
		d.err = fmt.Errorf("%w: non-minimal varint in %s", ErrBadMessage, field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(field string) string {
	l := d.uvarint(field + " length")
	if d.err != nil {
		return ""
	}
	if l > MaxNameLen {
		d.err = fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, field, l, MaxNameLen)
		return ""
	}
	if uint64(len(d.b)) < l {
		d.err = fmt.Errorf("%w: %s needs %d bytes, %d left", ErrBadMessage, field, l, len(d.b))
		return ""
	}
	s := string(d.b[:l])
	d.b = d.b[l:]
	return s
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
