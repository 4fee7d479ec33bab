package mesh

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

func TestStateRoundTrip(t *testing.T) {
	in := metrics.Load{CPUPercent: 37.25, MemPercent: 81.5, Cores: 3.5, Load1: 1.75, NetRxBps: 123456, NetTxBps: 1 << 20, MemAvailable: 8 << 30}
	out, err := DecodeState(EncodeState(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if out.CPUPercent != 37.25 || out.MemPercent != 81.5 || out.Cores != 3.5 || out.Load1 != 1.75 {
		t.Fatalf("fixed fields: %+v", out)
	}
	for _, c := range []struct{ got, want float64 }{{out.NetRxBps, in.NetRxBps}, {out.NetTxBps, in.NetTxBps}, {float64(out.MemAvailable), float64(in.MemAvailable)}} {
		if d := (c.got - c.want) / c.want; d > 0.001 || d < -0.001 {
			t.Errorf("mini-float %v decoded as %v", c.want, c.got)
		}
	}
}

func TestStateRejects(t *testing.T) {
	good := EncodeState(nil, metrics.Load{CPUPercent: 5})
	cases := map[string][]byte{
		"empty":      nil,
		"short":      good[:10],
		"major 2":    append([]byte{0x20}, good[1:]...),
		"cpu > 100%": append(append([]byte{}, good[:2]...), append([]byte{0xff, 0xff}, good[4:]...)...),
		"too long":   make([]byte, MaxStateLen+1),
	}
	for name, b := range cases {
		if _, err := DecodeState(b); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: err %v, want ErrBadState", name, err)
		}
	}
	// A newer minor version with an appended field still decodes.
	newer := append(append([]byte{0x13}, good[1:]...), 9, 9, 9)
	if _, err := DecodeState(newer); err != nil {
		t.Errorf("minor version 3 with extra bytes: %v", err)
	}
}

func TestMiniFloatSaturatesAndRounds(t *testing.T) {
	for _, v := range []float64{0, 1, 2047, 2048, 2049, 4095, 1e6, 3.3e9, 4.4e12} {
		got := decodeMiniFloat(encodeMiniFloat(v))
		if v >= 1024 {
			if d := (got - v) / v; d > 0.001 || d < -0.001 {
				t.Errorf("%v -> %v", v, got)
			}
		} else if got != v {
			t.Errorf("%v -> %v", v, got)
		}
	}
	if got := decodeMiniFloat(encodeMiniFloat(1e20)); got != 2047*(1<<31) {
		t.Errorf("no saturation: %v", got)
	}
}

func TestEntriesRoundTripAndBounds(t *testing.T) {
	st := EncodeState(nil, metrics.Load{CPUPercent: 12})
	in := []Entry{{Name: "a", Age: 0, Version: 1, Full: true, State: st}, {Name: "node-2.example", Age: 1230 * time.Millisecond, Version: VersionAt(time.Now()), Full: true, State: st}, {Name: "c", Age: time.Second, Version: 1 << 62, Tag: 0xBEEF}}
	base := VersionAt(time.Now())
	out, gotBase, err := DecodeEntries(AppendEntries(nil, base, in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[2].Full || out[2].Tag != 0xBEEF || out[2].ID != NameID("c") || out[1].Tag != StateTag(st) || out[1].ID != NameID("node-2.example") || out[1].Age != 1250*time.Millisecond || !bytes.Equal(out[1].State, st) ||
		out[0].Version != 1 || out[1].Version != in[1].Version || out[2].Version != 1<<62 || gotBase != base {
		t.Fatalf("round trip: %+v", out)
	}
	body := AppendEntries(nil, base, in)
	for i := range body {
		if _, _, err := DecodeEntries(body[:i]); err == nil {
			t.Errorf("truncated at %d decoded", i)
		}
	}
	huge := []byte{KindLoad, 0, 0xff, 0xff, 0x03}
	if _, _, err := DecodeEntries(huge); !errors.Is(err, ErrBadPacket) {
		t.Errorf("count beyond bound: %v", err)
	}
	// Versions out of range: below zero, or above MaxVersion.
	for _, v := range []int64{-1, MaxVersion + 1} {
		b := []byte{KindLoad, 10, 1, 0, 0, 0, 1, 0}
		b = binary.AppendVarint(b, v-10)
		b = append(b, 0xBE, 0xEF)
		if _, _, err := DecodeEntries(b); !errors.Is(err, ErrBadPacket) {
			t.Errorf("version %d decoded: %v", v, err)
		}
	}
}

func TestSealerLabelAndKeys(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	body := []byte{KindLoad, 0}
	plainA := &Sealer{Label: "a"}
	p, _ := plainA.Seal(nil, body)
	if got, err := plainA.Open(p); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("plain round trip: %v", err)
	}
	if _, err := (&Sealer{Label: "b"}).Open(p); err == nil {
		t.Error("packet of label a opened under label b")
	}
	enc := func(primary []byte, all ...[]byte) *Sealer {
		return &Sealer{Label: "a", Keys: func() ([]byte, [][]byte) { return primary, all }}
	}
	p, err := enc(k1, k1).Seal(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc(k2, k2, k1).Open(p); err != nil {
		t.Errorf("secondary key should open: %v", err)
	}
	if _, err := enc(k2, k2).Open(p); !errors.Is(err, ErrNoKey) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := plainA.Open(p); err == nil {
		t.Error("encrypted packet opened without keys")
	}
	pp, _ := plainA.Seal(nil, body)
	if _, err := enc(k1, k1).Open(pp); !errors.Is(err, ErrPlaintext) {
		t.Errorf("plaintext accepted with encryption on: %v", err)
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(EncodeState(nil, metrics.Load{CPUPercent: 50, NetRxBps: 1e6}))
	f.Add([]byte{0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeState(b)
		if err != nil {
			return
		}
		if l.CPUPercent > 100 || l.MemPercent > 100 || l.CPUPercent < 0 {
			t.Fatalf("decoded out of range: %+v", l)
		}
		// Re-encoding a decoded state is stable.
		l2, err := DecodeState(EncodeState(nil, l))
		if err != nil || l2 != l {
			t.Fatalf("re-encode: %+v vs %+v (%v)", l, l2, err)
		}
	})
}

func FuzzDecodeEntries(f *testing.F) {
	st := EncodeState(nil, metrics.Load{CPUPercent: 12})
	f.Add(AppendEntries(nil, 0, []Entry{{Name: "a", Full: true, State: st}, {Name: "b", Age: time.Second, Tag: 7}}))
	// Seeds from the table tests: the entries they merge.
	var seed []Entry
	for _, c := range mergeCases() {
		seed = append(seed, c.e)
	}
	f.Add(AppendEntries(nil, 101, seed))
	f.Add(AppendEntries(nil, VersionAt(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)), seed))
	f.Add([]byte{KindLoad, 0, 0})
	f.Add([]byte{KindLoad, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, base, err := DecodeEntries(b)
		if err != nil {
			return
		}
		if len(es) > MaxEntries {
			t.Fatalf("%d entries", len(es))
		}
		for _, e := range es {
			if len(e.State) > MaxStateLen || e.Age > MaxEntryAge || e.Version > MaxVersion {
				t.Fatalf("entry out of bounds: %+v", e)
			}
		}
		for i := range es {
			es[i].Name = fmt.Sprint(es[i].ID)
		}
		again, _, err := DecodeEntries(AppendEntries(nil, base, es))
		if err != nil || len(again) != len(es) {
			t.Fatalf("re-encode: %v", err)
		}
		for i := range es {
			if again[i].Version != es[i].Version || again[i].Full != es[i].Full || again[i].Tag != es[i].Tag {
				t.Fatalf("entry %d re-encoded as %+v, was %+v", i, again[i], es[i])
			}
		}
		// Merging whatever decodes never panics, and never takes an entry
		// at or below the version held.
		tb := NewTable("self")
		for _, e := range es {
			e.Name = fmt.Sprint(e.ID % 4)
			_, _, had := tb.Get(e.Name)
			before := uint64(0)
			if had {
				before = tb.entries[e.Name].version
			}
			if tb.Merge(e, time.Unix(1_800_000_000, 0)) == Taken && had && e.Version <= before {
				t.Fatalf("took version %d over %d", e.Version, before)
			}
		}
	})
}

func FuzzOpenPacket(f *testing.F) {
	s := &Sealer{Label: "x", Keys: func() ([]byte, [][]byte) { k := bytes.Repeat([]byte{7}, 16); return k, [][]byte{k} }}
	p, _ := s.Seal(nil, []byte{KindLoad, 0, 0})
	f.Add(p)
	f.Add([]byte{PacketMagic, packetVersion << 4, 1, 'x', KindLoad, 0, 0})
	f.Add(append([]byte{PacketMagic, packetVersion << 4, 1, 'x'}, AppendElection(nil, "n1", 7, []byte{1, 2, 3})...))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range []*Sealer{s, {Label: "x"}} {
			body, err := s.Open(b)
			if err == nil && len(body) > 0 && body[0] == KindLoad {
				_, _, _ = DecodeEntries(body)
			}
			if err == nil && len(body) > 0 && body[0] == KindElection {
				_, _, _, _ = DecodeElection(body)
			}
		}
	})
}

func TestGarbageAtTheGossipPortIsDroppedAndCounted(t *testing.T) {
	a := startNode(t, 1, "", nil, "")
	b := startNode(t, 2, "", nil, "")
	if _, err := b.m.Join([]string{addrOf(a.m)}); err != nil {
		t.Fatal(err)
	}
	// Garbage with our magic byte, and garbage memberlist must reject.
	for _, pkt := range [][]byte{{PacketMagic, packetVersion << 4, 0}, {PacketMagic, packetVersion << 4, 0, KindLoad, 0xff, 0xff, 0xff}, {PacketMagic}, {0xff, 1, 2, 3}} {
		if _, err := b.m.trans.WriteTo(pkt, addrOf(a.m)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "garbage counted", func() error {
		if d := a.m.Stats().Dropped.Load(); d < 3 {
			return errors.New("dropped counter below 3")
		}
		return nil
	})
	waitFor(t, 30*time.Second, "mesh still works", func() error {
		for _, m := range a.m.View().Members() {
			if m.Status != StatusAlive || m.Load == nil {
				return errors.New(m.Name + " not alive with load")
			}
		}
		return nil
	})
}

func TestElectionEnvelope(t *testing.T) {
	b := AppendElection(nil, "node-1", 1<<40, []byte("msg"))
	from, v, msg, err := DecodeElection(b)
	if err != nil || from != "node-1" || v != 1<<40 || string(msg) != "msg" {
		t.Fatalf("round trip: %q %d %q %v", from, v, msg, err)
	}
	for i := range b[:len(b)-3] {
		if _, _, _, err := DecodeElection(b[:i]); !errors.Is(err, ErrBadPacket) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	long := AppendElection(nil, "n", 1, make([]byte, MaxElectionLen+1))
	if _, _, _, err := DecodeElection(long); !errors.Is(err, ErrBadPacket) {
		t.Errorf("oversized message: %v", err)
	}
	// A version 1 packet (no versions: replayable) is refused.
	old := []byte{PacketMagic, 1 << 4, 0, KindLoad, 0}
	if _, err := (&Sealer{}).Open(old); !errors.Is(err, ErrBadPacket) {
		t.Errorf("framing version 1 opened: %v", err)
	}
}

func FuzzDecodeElection(f *testing.F) {
	f.Add(AppendElection(nil, "node-1", 1<<40, []byte("msg")))
	f.Add(AppendElection(nil, "a", 0, nil))
	f.Add([]byte{KindElection, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		from, v, msg, err := DecodeElection(b)
		if err != nil {
			return
		}
		if from == "" || len(from) > MaxNameLen || len(msg) > MaxElectionLen {
			t.Fatalf("out of bounds: %q %d bytes", from, len(msg))
		}
		f2, v2, m2, err := DecodeElection(AppendElection(nil, from, v, msg))
		if err != nil || f2 != from || v2 != v || !bytes.Equal(m2, msg) {
			t.Fatalf("re-encode: %v", err)
		}
		// The anti-replay window takes a version once.
		tb := NewTable("self")
		if tb.AcceptElection(from, v) != ElectionFresh || tb.AcceptElection(from, v) != ElectionReplayed {
			t.Fatal("a version was taken twice")
		}
	})
}

func FuzzParseVersionFloor(f *testing.F) {
	f.Add([]byte("217238400\n"))
	f.Add([]byte("0"))
	f.Add([]byte("4611686018427387905\n"))
	f.Add([]byte("-1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVersionFloor(b)
		if err != nil {
			return
		}
		if v > maxVersionFloor {
			t.Fatalf("floor %d above the bound", v)
		}
		if w, err := ParseVersionFloor([]byte(fmt.Sprintf("%d\n", v))); err != nil || w != v {
			t.Fatalf("re-encode %d: %d %v", v, w, err)
		}
	})
}
