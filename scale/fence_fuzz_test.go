package scale

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/fence"
)

// FuzzDecodeFenceState feeds the fence file's decoder (what FileFence
// reads from the state directory) arbitrary contents: it never panics,
// refuses files over 64 KiB, and a state it takes writes back (as
// FileFence writes it) to a file that reads back the same.
func FuzzDecodeFenceState(f *testing.F) {
	for _, st := range []FenceState{
		{},
		{Lease: fence.Lease{Holder: "el-3", Priority: 3, Term: 7}, Count: 4, Known: true,
			Last: &Applied{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), From: 3, To: 4, Lease: fence.Lease{Holder: "el-3", Priority: 3, Term: 7}}},
	} {
		b, _ := json.Marshal(st)
		f.Add(b)
	}
	f.Add([]byte(`{"count":-1}`))
	f.Add([]byte(`{"lease":{"term":18446744073709551616}}`))
	f.Add([]byte(`{"last":null,"known":"yes"}`))
	f.Add([]byte(strings.Repeat(" ", 70000) + "{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeFenceState(b)
		if err != nil {
			return
		}
		if len(b) > maxFenceFile || st.Count < 0 {
			t.Fatalf("took %d bytes, count %d", len(b), st.Count)
		}
		out, err := json.Marshal(st)
		if err != nil {
			return // a time JSON cannot write: the fence's write fails and says so
		}
		again, err := DecodeFenceState(out)
		if err != nil {
			t.Fatalf("%s, written back, does not read: %v", out, err)
		}
		a, _ := json.Marshal(again)
		if !reflect.DeepEqual(a, out) {
			t.Fatalf("written back as %s, then as %s", out, a)
		}
	})
}
