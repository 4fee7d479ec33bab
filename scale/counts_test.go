package scale

import (
	"errors"
	"testing"
)

func TestParseCounts(t *testing.T) {
	for in, want := range map[string]Counts{
		"3":                          {Current: 3},
		" 5 2\n":                     {Current: 5, Ready: 2, ReadyKnown: true},
		`{"current": 4}`:             {Current: 4},
		`{"current": 4, "ready": 0}`: {Current: 4, Ready: 0, ReadyKnown: true},
		`{"ready": 6, "current": 5}`: {Current: 5, Ready: 6, ReadyKnown: true}, // scale-in under way
		"0":                          {},
	} {
		got, err := ParseCounts([]byte(in))
		if err != nil || got != want {
			t.Errorf("ParseCounts(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "3 x", "-1", "3 -1", "1 2 3", "99999999", `{"ready": 1}`, `{"current": -2}`, `{"current": 1.5}`, "{", "3.0"} {
		if _, err := ParseCounts([]byte(in)); !errors.Is(err, ErrBadCounts) {
			t.Errorf("ParseCounts(%q): %v, want ErrBadCounts", in, err)
		}
	}
}

// FuzzParseCounts: a hook's answer is untrusted: no panic, and whatever is
// accepted is within bounds.
func FuzzParseCounts(f *testing.F) {
	for _, s := range []string{"3", "5 2", `{"current": 4, "ready": 1}`, "-1", "{", "1e9"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCounts(b)
		if err != nil {
			return
		}
		if c.Current < 0 || c.Current > MaxCount || c.Ready < 0 || c.Ready > MaxCount || (!c.ReadyKnown && c.Ready != 0) {
			t.Fatalf("%q accepted as %+v", b, c)
		}
	})
}
