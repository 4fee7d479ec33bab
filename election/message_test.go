package election

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var messageTable = []Message{
	{Type: MsgChallenge, From: "n1", To: "n5", Term: 0},
	{Type: MsgAnswer, From: "n5", To: "n1", Term: 7},
	{Type: MsgAnswer, From: "n5", To: "n1", Term: 7, RefTerm: 6, RefHolder: "n4"},
	{Type: MsgCoordinator, From: "n5", To: "n2", Term: 1 << 40},
	{Type: MsgCoordinator, From: "n5", To: "n2", Term: 3, Acting: true},
	{Type: MsgAck, From: "n2", To: "n5", Term: 3, RefTerm: 2, RefHolder: "n4"},
	{Type: MsgNack, From: "n2", To: "n5", Term: 3, Outranked: true, RefTerm: 3, RefHolder: "n2"},
	{Type: MsgNack, From: "n2", To: "n5", Term: 3, NoQuorum: true},
	{Type: MsgAck, From: strings.Repeat("a", MaxNameLen), To: strings.Repeat("b", MaxNameLen), Term: TermLimit,
		RefTerm: TermLimit, RefHolder: strings.Repeat("c", MaxNameLen)},
	{Type: MsgChallenge, From: "noeud-é", To: "節點", Term: 1},
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range messageTable {
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if len(b) > MaxMessageSize {
			t.Errorf("%v: %d bytes, over MaxMessageSize %d", m, len(b), MaxMessageSize)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if got != m {
			t.Errorf("round trip: got %v, want %v", got, m)
		}
	}
}

// TestMessageLayout pins the byte layout written in the package doc.
func TestMessageLayout(t *testing.T) {
	m := Message{Type: MsgAck, From: "n2", To: "n5", Term: 300, RefTerm: 2, RefHolder: "n4"}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 4, 0, 0xac, 0x02, 2, 'n', '2', 2, 'n', '5', 2, 2, 'n', '4'}
	if !bytes.Equal(b, want) {
		t.Errorf("got % x, want % x", b, want)
	}
}

func TestMessageErrors(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"type 0", Message{From: "a", To: "b"}, ErrBadMessage},
		{"type 9", Message{Type: 9, From: "a", To: "b"}, ErrBadMessage},
		{"no from", Message{Type: MsgAck, To: "b"}, ErrBadMessage},
		{"no to", Message{Type: MsgAck, From: "a"}, ErrBadMessage},
		{"long from", Message{Type: MsgAck, From: long, To: "b"}, ErrTooLarge},
		{"long ref", Message{Type: MsgAck, From: "a", To: "b", RefHolder: long}, ErrTooLarge},
		{"acting on ack", Message{Type: MsgAck, From: "a", To: "b", Acting: true}, ErrBadMessage},
		{"outranked on ack", Message{Type: MsgAck, From: "a", To: "b", Outranked: true}, ErrBadMessage},
		{"ref on challenge", Message{Type: MsgChallenge, From: "a", To: "b", RefTerm: 1}, ErrBadMessage},
		{"not utf-8", Message{Type: MsgAck, From: "a\xff", To: "b"}, ErrBadMessage},
		{"term above the limit", Message{Type: MsgCoordinator, From: "a", To: "b", Term: TermLimit + 1}, ErrBadMessage},
		{"reference above the limit", Message{Type: MsgNack, From: "a", To: "b", Term: 1, RefTerm: ^uint64(0)}, ErrBadMessage},
	} {
		if _, err := tc.m.Marshal(); !errors.Is(err, tc.want) {
			t.Errorf("%s: Marshal: %v, want %v", tc.name, err, tc.want)
		}
	}
	good, _ := Message{Type: MsgAck, From: "a", To: "b", Term: 1}.Marshal()
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrBadMessage},
		{"short", []byte{1, 4}, ErrBadMessage},
		{"version", append([]byte{2}, good[1:]...), ErrBadMessage},
		{"flags", []byte{1, 4, 0x80, 1, 1, 'a', 1, 'b', 0, 0}, ErrBadMessage},
		{"truncated", good[:len(good)-1], ErrBadMessage},
		{"trailing", append(append([]byte{}, good...), 0), ErrBadMessage},
		{"non-minimal varint", []byte{1, 4, 0, 0x81, 0x00, 1, 'a', 1, 'b', 0, 0}, ErrBadMessage},
		{"varint overflow", []byte{1, 4, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrBadMessage},
		{"name too long", []byte{1, 4, 0, 1, 0x80, 0x02}, ErrTooLarge},
		{"too large", make([]byte, MaxMessageSize+1), ErrTooLarge},
		// A claim of term 2^64-1 would make the next claim wrap to 0.
		{"term 2^64-1", []byte{1, 3, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 'a', 1, 'b', 0, 0}, ErrBadMessage},
	} {
		if _, err := Unmarshal(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: Unmarshal: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzUnmarshal feeds Unmarshal arbitrary bytes, seeded from the table: it
// must never panic, and what it accepts must be the canonical encoding.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range messageTable {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 4, 0, 0x81, 0x00, 1, 'a', 1, 'b', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if m.Term > TermLimit || m.RefTerm > TermLimit {
			t.Fatalf("accepted %v: a term above TermLimit", m)
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted %v but cannot encode it: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: % x re-encodes as % x", b, again)
		}
	})
}
