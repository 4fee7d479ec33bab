package mesh

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Packet framing on the shared gossip port. memberlist's own packets start
// with a message type below 32, an encryption version (0 or 1) or its label
// marker (244); Shoal's start with PacketMagic, so one UDP port carries both
// and the transport hands each to its owner.
const (
	// PacketMagic is the first byte of every Shoal packet.
	PacketMagic = 0xC5
	// packetVersion is the framing version, in the high nibble of byte 1.
	// Version 2 added versions to load entries and election messages;
	// version 1 packets (which a replay could roll back) are refused.
	packetVersion = 2
	flagEncrypted = 0x01

	// KindLoad carries load entries (see the package doc).
	KindLoad = 1
	// KindElection carries one election message.
	KindElection = 2

	// MaxPacketSize bounds a Shoal packet on the wire.
	MaxPacketSize = 64 * 1024
	// MaxEntries bounds the entries in one load packet.
	MaxEntries = 1024
	// MaxNameLen bounds a node name in a load entry.
	MaxNameLen = 128 // (names do not travel in load entries; see NameID)
	// MaxEntryAge bounds the age carried by an entry.
	MaxEntryAge = time.Hour

	nonceSize = 12
)

// Sentinel errors for packets; decoders wrap them with the details.
var (
	ErrBadPacket = errors.New("mesh: malformed packet")
	ErrNoKey     = errors.New("mesh: packet cannot be decrypted with any installed key")
	ErrPlaintext = errors.New("mesh: unencrypted packet while gossip encryption is on")
	ErrNotShoal  = errors.New("mesh: not a shoal packet")

	// errOversize and errWrongLabel are wrapped, beside ErrBadPacket, so
	// that a drop is counted under its reason (see DropReason).
	errOversize   = errors.New("too large")
	errWrongLabel = errors.New("wrong label")
)

// Entry is one member's load as carried in a packet: the encoded state and
// how long ago its origin published it, as the sender reckons.
type Entry struct {
	// Name is the member's name. It does not travel: the packet carries
	// NameID(Name), and the receiver maps it back through its member list.
	Name string
	// ID is NameID(Name); DecodeEntries fills it, AppendEntries ignores it.
	ID  uint32
	Age time.Duration
	// Version is the origin's version of this confirmation (VersionClock):
	// receivers take only versions above the one they hold.
	Version uint64
	// Full entries carry State; refreshes carry only Tag (StateTag of the
	// state they confirm).
	Full  bool
	State []byte
	Tag   uint16
}

// ageUnit is the resolution of ages on the wire.
const ageUnit = 50 * time.Millisecond

// NameID is the 32-bit FNV-1a hash of a member name, which stands for the
// name in load entries (4 bytes instead of up to 129). Two alive members
// whose IDs collide are detected by every receiver, which then ignores
// entries for that ID (see Mesh).
func NameID(name string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return h
}

// AppendEntries appends the body of a KindLoad packet holding entries.
// base is the sender's version clock reading (VersionAt(now)): each
// entry's version travels as its difference from base − age, which is
// about the clock skew between its origin and the sender (1 byte within
// ±630 ms) instead of a whole version (5 bytes). Any base decodes right;
// a good one only makes the packet smaller.
func AppendEntries(dst []byte, base uint64, entries []Entry) []byte {
	dst = append(dst, KindLoad)
	dst = binary.AppendUvarint(dst, base)
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	for _, e := range entries {
		dst = appendEntry(dst, base, e)
	}
	return dst
}

// versionsPerAge is how many version units one wire age unit spans.
const versionsPerAge = int64(ageUnit / VersionUnit)

// versionDelta is what travels for version v in an entry of wire age a in
// a packet of the given base: v − (base − a·versionsPerAge).
func versionDelta(v, base, a uint64) int64 {
	pred := int64(base) - int64(a)*versionsPerAge
	return int64(v) - pred
}

func appendEntry(dst []byte, base uint64, e Entry) []byte {
	dst = binary.BigEndian.AppendUint32(dst, NameID(e.Name))
	full := uint64(0)
	if e.Full {
		full = 1
	}
	a := wireAge(e.Age)
	dst = binary.AppendUvarint(dst, a<<1|full)
	dst = binary.AppendVarint(dst, versionDelta(e.Version, base, a))
	if !e.Full {
		return binary.BigEndian.AppendUint16(dst, e.Tag)
	}
	dst = append(dst, byte(len(e.State)))
	return append(dst, e.State...)
}

// wireAge rounds an age up to a whole wire unit: a load is never passed on
// as more recent than it is. (Rounding to the nearest unit let a
// confirmation arrive after six relay hops up to 6 × 25 ms fresher than its
// origin had published it; rounding up makes it that much older at worst,
// and every hop's latency adds to the age anyway.)
func wireAge(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + ageUnit - 1) / ageUnit)
}

// entrySize is the encoded size of e inside a packet body of that base.
func entrySize(e Entry, base uint64) int {
	var tmp [binary.MaxVarintLen64]byte
	a := wireAge(e.Age)
	n := 4 + binary.PutUvarint(tmp[:], a<<1) + binary.PutVarint(tmp[:], versionDelta(e.Version, base, a))
	if !e.Full {
		return n + 2
	}
	return n + 1 + len(e.State)
}

// MaxVersion bounds versions: far above any clock reading (the year 2100
// is about 2.4e11), far below overflow.
const MaxVersion = 1 << 62

// DecodeEntries decodes the body of a KindLoad packet (starting at the kind
// byte) and returns its entries and base. It checks every length against
// the input and the bounds above and returns an error wrapping
// ErrBadPacket instead of panicking.
func DecodeEntries(b []byte) ([]Entry, uint64, error) {
	if len(b) < 3 || b[0] != KindLoad {
		return nil, 0, fmt.Errorf("%w: not a load body", ErrBadPacket)
	}
	base, k := binary.Uvarint(b[1:])
	if k <= 0 || base > MaxVersion {
		return nil, 0, fmt.Errorf("%w: bad version base", ErrBadPacket)
	}
	b = b[1+k:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, 0, fmt.Errorf("%w: bad entry count", ErrBadPacket)
	}
	if n > MaxEntries {
		return nil, 0, fmt.Errorf("%w: %d entries, at most %d allowed", ErrBadPacket, n, MaxEntries)
	}
	b = b[k:]
	// Each entry takes at least 8 bytes: a count larger than that is a lie.
	if n > uint64(len(b))/8+1 {
		return nil, 0, fmt.Errorf("%w: %d entries in %d bytes", ErrBadPacket, n, len(b))
	}
	out := make([]Entry, 0, n)
	for i := uint64(0); i < n; i++ {
		e, rest, err := decodeEntry(b, base, i)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, e)
		b = rest
	}
	if len(b) != 0 {
		return nil, 0, fmt.Errorf("%w: %d trailing bytes", ErrBadPacket, len(b))
	}
	return out, base, nil
}

// decodeEntry decodes entry i at the start of b in a packet of that base
// and returns the rest of b.
func decodeEntry(b []byte, base, i uint64) (Entry, []byte, error) {
	if len(b) < 4 {
		return Entry{}, nil, fmt.Errorf("%w: entry %d truncated", ErrBadPacket, i)
	}
	id := binary.BigEndian.Uint32(b)
	b = b[4:]
	af, k := binary.Uvarint(b)
	if k <= 0 {
		return Entry{}, nil, fmt.Errorf("%w: entry %d bad age", ErrBadPacket, i)
	}
	age, full := af>>1, af&1 == 1
	if age > uint64(MaxEntryAge/ageUnit) {
		return Entry{}, nil, fmt.Errorf("%w: entry %d age %v above %v", ErrBadPacket, i, time.Duration(age)*ageUnit, MaxEntryAge)
	}
	b = b[k:]
	d, k := binary.Varint(b)
	if k <= 0 {
		return Entry{}, nil, fmt.Errorf("%w: entry %d bad version", ErrBadPacket, i)
	}
	b = b[k:]
	// base ≤ 2^62 and age ≤ 72,000: pred cannot overflow; the sum is
	// checked against [0, MaxVersion] before it is used.
	pred := int64(base) - int64(age)*versionsPerAge
	if d > MaxVersion || d < -MaxVersion || pred+d < 0 || pred+d > MaxVersion {
		return Entry{}, nil, fmt.Errorf("%w: entry %d version out of range", ErrBadPacket, i)
	}
	ver := uint64(pred + d)
	if !full {
		if len(b) < 2 {
			return Entry{}, nil, fmt.Errorf("%w: entry %d truncated", ErrBadPacket, i)
		}
		return Entry{ID: id, Age: time.Duration(age) * ageUnit, Version: ver, Tag: binary.BigEndian.Uint16(b)}, b[2:], nil
	}
	if len(b) < 1 {
		return Entry{}, nil, fmt.Errorf("%w: entry %d truncated", ErrBadPacket, i)
	}
	sl := int(b[0])
	if sl > MaxStateLen || len(b) < 1+sl {
		return Entry{}, nil, fmt.Errorf("%w: entry %d state length %d", ErrBadPacket, i, sl)
	}
	st := append([]byte(nil), b[1:1+sl]...)
	return Entry{ID: id, Age: time.Duration(age) * ageUnit, Version: ver, Full: true, State: st, Tag: StateTag(st)}, b[1+sl:], nil
}

// MaxElectionLen bounds an election message inside its envelope.
const MaxElectionLen = 4096

// AppendElection appends the body of a KindElection packet: the sender's
// name, its version (VersionClock) and the election message.
func AppendElection(dst []byte, from string, version uint64, msg []byte) []byte {
	dst = append(dst, KindElection, byte(len(from)))
	dst = append(dst, from...)
	dst = binary.AppendUvarint(dst, version)
	return append(dst, msg...)
}

// DecodeElection decodes the body of a KindElection packet. The message
// aliases b.
func DecodeElection(b []byte) (from string, version uint64, msg []byte, err error) {
	if len(b) < 2 || b[0] != KindElection {
		return "", 0, nil, fmt.Errorf("%w: not an election body", ErrBadPacket)
	}
	nl := int(b[1])
	if nl == 0 || nl > MaxNameLen || len(b) < 2+nl {
		return "", 0, nil, fmt.Errorf("%w: election sender name of %d bytes in %d", ErrBadPacket, nl, len(b))
	}
	from = string(b[2 : 2+nl])
	b = b[2+nl:]
	version, k := binary.Uvarint(b)
	if k <= 0 {
		return "", 0, nil, fmt.Errorf("%w: election from %q: bad version", ErrBadPacket, from)
	}
	msg = b[k:]
	if len(msg) > MaxElectionLen {
		return "", 0, nil, fmt.Errorf("%w: election message of %d bytes, at most %d", ErrBadPacket, len(msg), MaxElectionLen)
	}
	return from, version, msg, nil
}

// Sealer frames packet bodies for the wire and opens them, encrypting with
// AES-GCM under the primary gossip key when keys are installed. The label
// (memberlist's) is authenticated as additional data, so packets of another
// mesh fail to open even when both use the same key.
type Sealer struct {
	// Keys returns the installed keys, primary first; nil or empty means
	// gossip encryption is off. It is called once per packet.
	Keys func() (primary []byte, all [][]byte)
	// Label is the mesh label, authenticated but not sent.
	Label string
}

func (s *Sealer) keys() ([]byte, [][]byte) {
	if s == nil || s.Keys == nil {
		return nil, nil
	}
	return s.Keys()
}

// Seal frames body into a packet appended to dst.
func (s *Sealer) Seal(dst, body []byte) ([]byte, error) {
	primary, _ := s.keys()
	if len(primary) == 0 {
		dst = append(dst, PacketMagic, packetVersion<<4)
		dst = append(dst, byte(len(s.label())))
		dst = append(dst, s.label()...)
		return append(dst, body...), nil
	}
	gcm, err := newGCM(primary)
	if err != nil {
		return nil, err
	}
	hdr := []byte{PacketMagic, packetVersion<<4 | flagEncrypted}
	dst = append(dst, hdr...)
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	dst = append(dst, nonce[:]...)
	return gcm.Seal(dst, nonce[:], body, s.aad(hdr)), nil
}

// Open checks a packet's framing and returns its body. Plaintext packets are
// refused when encryption is on, and encrypted ones when it is off.
func (s *Sealer) Open(p []byte) ([]byte, error) {
	if len(p) < 2 || p[0] != PacketMagic {
		return nil, ErrNotShoal
	}
	if len(p) > MaxPacketSize {
		return nil, fmt.Errorf("%w: %w: %d bytes, at most %d", ErrBadPacket, errOversize, len(p), MaxPacketSize)
	}
	if p[1]>>4 != packetVersion {
		return nil, fmt.Errorf("%w: framing version %d", ErrBadPacket, p[1]>>4)
	}
	_, all := s.keys()
	if p[1]&flagEncrypted == 0 {
		if len(all) > 0 {
			return nil, ErrPlaintext
		}
		if len(p) < 3 || len(p) < 3+int(p[2]) {
			return nil, fmt.Errorf("%w: truncated label", ErrBadPacket)
		}
		if string(p[3:3+int(p[2])]) != s.label() {
			return nil, fmt.Errorf("%w: %w %q, this mesh is %q", ErrBadPacket, errWrongLabel, p[3:3+int(p[2])], s.label())
		}
		return p[3+int(p[2]):], nil
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: encrypted packet but gossip encryption is off", ErrNoKey)
	}
	if len(p) < 2+nonceSize+16 {
		return nil, fmt.Errorf("%w: encrypted packet of %d bytes", ErrBadPacket, len(p))
	}
	hdr, nonce, ct := p[:2], p[2:2+nonceSize], p[2+nonceSize:]
	for _, k := range all {
		gcm, err := newGCM(k)
		if err != nil {
			continue
		}
		if body, err := gcm.Open(nil, nonce, ct, s.aad(hdr)); err == nil {
			return body, nil
		}
	}
	return nil, ErrNoKey
}

func (s *Sealer) label() string {
	if s == nil || len(s.Label) > 255 {
		return ""
	}
	return s.Label
}

func (s *Sealer) aad(hdr []byte) []byte {
	return append(append([]byte(nil), hdr...), s.label()...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("mesh: gossip key of %d bytes: %w", len(key), err)
	}
	return cipher.NewGCM(blk)
}
