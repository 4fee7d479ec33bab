package mesh

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzParseScaleTag feeds ParseScaleTag what a member may announce in its
// scale tag (memberlist bounds a member's tags to 512 bytes): it never
// panics, an error names the value, and what it accepts re-encodes to a
// tag that parses to the same action.
func FuzzParseScaleTag(f *testing.F) {
	// Seeds from the table tests in view_test.go.
	f.Add(ScaleTag{Term: 4, Priority: 9, Time: time.Unix(0, 1234567890), From: 2, To: 5}.String())
	f.Add(ScaleTag{Term: 3, Priority: 2, Time: time.Unix(100, 0), From: 1, To: 4}.String())
	f.Add("1/2/x/4/5")
	f.Add("18446744073709551615/-9223372036854775808/-9223372036854775808/-1/0")
	f.Add("18446744073709551616/0/0/0/0")
	f.Add("1/2/3/4/5/6")
	f.Add("+1/+2/+3/+4/+5")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 512 {
			return
		}
		st, err := ParseScaleTag(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("error %q does not name the value %q", err, s)
			}
			return
		}
		back, err := ParseScaleTag(st.String())
		if err != nil || back != st {
			t.Fatalf("%q parsed as %+v, which re-encodes as %q and parses as %+v (%v)", s, st, st.String(), back, err)
		}
	})
}
