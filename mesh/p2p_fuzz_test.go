//go:build !nolibp2p

package mesh

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzReadFrame feeds a packet stream's bytes to readFrame, as a peer that
// passed the key check could send them: frames come out within the
// bounds, bad lengths are a *badFrameError, nothing panics, and what it
// reads re-frames to the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	one, _ := appendFrame(nil, []byte{PacketMagic, 0x21, 1, 2, 3})
	two, _ := appendFrame(append([]byte(nil), one...), bytes.Repeat([]byte{7}, 300))
	f.Add(one)
	f.Add(two)
	f.Add([]byte{0, 0, 0, 0})                   // zero length
	f.Add([]byte{0, 1, 0, 1, 9})                // one above p2pMaxFrame
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}) // 4 GiB claimed
	f.Add(one[:len(one)-1])                     // cut inside the packet
	f.Add([]byte{0, 0})                         // cut inside the length
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		var again []byte
		for {
			before := len(b) - r.Len()
			p, err := readFrame(r)
			if err != nil {
				var bad *badFrameError
				switch {
				case errors.As(err, &bad):
					if n := binary.BigEndian.Uint32(b[before:]); bad.n != n || n != 0 && n <= p2pMaxFrame {
						t.Fatalf("length %d refused as %v", n, err)
					}
				case err == io.EOF:
					if before != len(b) {
						t.Fatalf("EOF with %d bytes left", len(b)-before)
					}
				case err != io.ErrUnexpectedEOF:
					t.Fatalf("error %v", err)
				}
				break
			}
			if len(p) == 0 || len(p) > p2pMaxFrame {
				t.Fatalf("frame of %d bytes", len(p))
			}
			if again, err = appendFrame(again, p); err != nil {
				t.Fatal(err)
			}
			if consumed := b[:len(b)-r.Len()]; !bytes.Equal(again, consumed) {
				t.Fatalf("re-framed % x, read % x", again, consumed)
			}
		}
	})
}

// FuzzP2PStreamToken checks the token that opens every p2p stream (an
// HMAC over the label and both peer IDs under a mesh key): whatever the
// bytes, verify accepts exactly the token made with an installed key for
// this sender and this receiver, and never panics.
func FuzzP2PStreamToken(f *testing.F) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	self, from := peer.ID("\x00\x24self-peer-id"), peer.ID("\x00\x24from-peer-id")
	f.Add(authToken(k1, "lbl", from, self), "lbl", string(from))
	f.Add(authToken(k2, "lbl", from, self), "lbl", string(from))
	f.Add(authToken(k1, "lbl", self, from), "lbl", string(from)) // the wrong way round
	f.Add(authToken(k1, "other", from, self), "lbl", string(from))
	f.Add(authToken(nil, "lbl", from, self), "lbl", string(from)) // the keyless token
	f.Add([]byte{}, "", "")
	f.Fuzz(func(t *testing.T, tok []byte, label, sender string) {
		tr := &p2pTransport{self: self, label: label, keys: func() [][]byte { return [][]byte{k1, k2} }}
		from := peer.ID(sender)
		want := bytes.Equal(tok, authToken(k1, label, from, self)) || bytes.Equal(tok, authToken(k2, label, from, self))
		if got := tr.verify(from, tok); got != want {
			t.Fatalf("verify(%q, % x) = %v, want %v", sender, tok, got, want)
		}
		if want && len(tok) != p2pAuthLen {
			t.Fatalf("a token of %d bytes verified", len(tok))
		}
		// A mesh without keys takes only the keyless token.
		open := &p2pTransport{self: self, label: label, keys: func() [][]byte { return nil }}
		if got := open.verify(from, tok); got != bytes.Equal(tok, authToken(nil, label, from, self)) {
			t.Fatalf("keyless verify(% x) = %v", tok, got)
		}
	})
}
