package mesh

import (
	"encoding/binary"
	"fmt"
	"time"
)

// KindRelay carries load entries on their way along the relay (grouped by
// the bits of the steps they have left) and the sender's wants: members
// whose load it holds too old, or whose state it missed. See the package
// doc, "Dissemination".
const KindRelay = 3

const (
	// MaxRelayGroups bounds the groups in one relay packet.
	MaxRelayGroups = 64
	// MaxWants bounds the wants in one relay packet.
	MaxWants = 256
	// MaxRelayBits bounds the number of steps of a broadcast (the bits of
	// a position): meshes of up to 2^31 members.
	MaxRelayBits = 31
	// wantAgeUnit is the resolution of a want's age (7 bits: up to
	// 12.7 s); wantFullBit in its byte asks for the full state, and
	// wantNone says the sender holds nothing of that member.
	wantAgeUnit = 100 * time.Millisecond
	wantFullBit = 0x80
	wantNone    = 0xFF
	wantMaxAge  = 0x7F
)

// RelayGroup is a run of entries that their receiver passes on along the
// same bits: Mask holds the bits of the steps left (bit b: to the member
// 2^b ahead), 0 when the receiver is the last of their broadcasts.
type RelayGroup struct {
	Mask    uint32
	Entries []Entry
}

// Want asks the receiver of a relay packet for a member's load: the sender
// holds it Age old (capped at 12.7 s), and asks for the full state if Full
// (it saw a confirmation of a state it does not hold) or None (it holds
// nothing of that member).
type Want struct {
	// Name does not travel: the packet carries NameID(Name).
	Name       string
	ID         uint32
	Age        time.Duration
	Full, None bool
}

// RelayPacket is the body of a KindRelay packet.
type RelayPacket struct {
	// Base is the sender's VersionClock value for this packet: entries'
	// versions travel as differences from it, and a receiver answers the
	// wants of a sender only under a base above the last one it answered
	// (a replayed packet's wants get no answer).
	Base uint64
	// From is NameID of the sender; answers go to that member's address,
	// not to where the packet came from.
	From   uint32
	Groups []RelayGroup
	Wants  []Want
}

// AppendRelay appends the body of a KindRelay packet sent by from.
//
//	0  1  kind (3)
//	   uvarint base (≤ 2^62)
//	   4  NameID of the sender
//	   uvarint group count (≤ 64), then per group:
//	      uvarint mask of the steps left (< 2^31)   uvarint entry count,
//	      entries as in kind 1
//	   uvarint want count (≤ 256), then per want:
//	      4  NameID   1  bit 7: the full state; bits 0–6: the sender's age
//	                     of it in 100 ms units; 255: the sender holds none
func AppendRelay(dst []byte, from string, p RelayPacket) []byte {
	dst = append(dst, KindRelay)
	dst = binary.AppendUvarint(dst, p.Base)
	dst = binary.BigEndian.AppendUint32(dst, NameID(from))
	dst = binary.AppendUvarint(dst, uint64(len(p.Groups)))
	for _, g := range p.Groups {
		dst = binary.AppendUvarint(dst, uint64(g.Mask))
		dst = binary.AppendUvarint(dst, uint64(len(g.Entries)))
		for _, e := range g.Entries {
			dst = appendEntry(dst, p.Base, e)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(p.Wants)))
	for _, w := range p.Wants {
		dst = binary.BigEndian.AppendUint32(dst, NameID(w.Name))
		dst = append(dst, wantAgeByte(w))
	}
	return dst
}

func wantAgeByte(w Want) byte {
	if w.None {
		return wantNone
	}
	a := min(max(w.Age/wantAgeUnit, 0), wantMaxAge)
	if w.Full {
		return byte(a) | wantFullBit
	}
	return byte(a)
}

// relayHeaderSize is the size of a relay body without groups or wants.
func relayHeaderSize(base uint64) int {
	var tmp [binary.MaxVarintLen64]byte
	return 1 + binary.PutUvarint(tmp[:], base) + 4 + 1 + 1
}

// relayGroupSize is the size of a group header with this mask holding n
// entries.
func relayGroupSize(mask uint32, n int) int {
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(mask)) + binary.PutUvarint(tmp[:], uint64(n))
}

// wantSize is the size of one want.
const wantSize = 5

// DecodeRelay decodes the body of a KindRelay packet (starting at the kind
// byte). It checks every count and length against the input and the bounds
// above and returns an error wrapping ErrBadPacket instead of panicking.
func DecodeRelay(b []byte) (RelayPacket, error) {
	var p RelayPacket
	if len(b) < 2 || b[0] != KindRelay {
		return p, fmt.Errorf("%w: not a relay body", ErrBadPacket)
	}
	base, k := binary.Uvarint(b[1:])
	if k <= 0 || base > MaxVersion {
		return p, fmt.Errorf("%w: bad version base", ErrBadPacket)
	}
	p.Base = base
	b = b[1+k:]
	if len(b) < 4 {
		return p, fmt.Errorf("%w: relay sender truncated", ErrBadPacket)
	}
	p.From = binary.BigEndian.Uint32(b)
	b = b[4:]
	ng, k := binary.Uvarint(b)
	if k <= 0 || ng > MaxRelayGroups {
		return p, fmt.Errorf("%w: relay group count %d (at most %d)", ErrBadPacket, ng, MaxRelayGroups)
	}
	b = b[k:]
	total := uint64(0)
	for gi := uint64(0); gi < ng; gi++ {
		mask, k := binary.Uvarint(b)
		if k <= 0 || mask >= 1<<MaxRelayBits {
			return p, fmt.Errorf("%w: relay group %d: bad mask of steps (at most %d bits)", ErrBadPacket, gi, MaxRelayBits)
		}
		b = b[k:]
		g := RelayGroup{Mask: uint32(mask)}
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return p, fmt.Errorf("%w: relay group %d bad entry count", ErrBadPacket, gi)
		}
		b = b[k:]
		total += n
		// Each entry takes at least 8 bytes: a count larger than that is a lie.
		if total > MaxEntries || n > uint64(len(b))/8 {
			return p, fmt.Errorf("%w: relay group %d: %d entries in %d bytes (at most %d in a packet)", ErrBadPacket, gi, n, len(b), MaxEntries)
		}
		g.Entries = make([]Entry, 0, n)
		for i := uint64(0); i < n; i++ {
			e, rest, err := decodeEntry(b, base, i)
			if err != nil {
				return p, fmt.Errorf("relay group %d: %w", gi, err)
			}
			g.Entries = append(g.Entries, e)
			b = rest
		}
		p.Groups = append(p.Groups, g)
	}
	nw, k := binary.Uvarint(b)
	if k <= 0 || nw > MaxWants {
		return p, fmt.Errorf("%w: want count %d (at most %d)", ErrBadPacket, nw, MaxWants)
	}
	b = b[k:]
	if uint64(len(b)) != nw*wantSize {
		return p, fmt.Errorf("%w: %d wants in %d bytes", ErrBadPacket, nw, len(b))
	}
	for i := uint64(0); i < nw; i++ {
		w := Want{ID: binary.BigEndian.Uint32(b)}
		if a := b[4]; a == wantNone {
			w.Full, w.None = true, true
		} else {
			w.Full, w.Age = a&wantFullBit != 0, time.Duration(a&wantMaxAge)*wantAgeUnit
		}
		p.Wants = append(p.Wants, w)
		b = b[wantSize:]
	}
	return p, nil
}
