package scale

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/fence"
)

// FuzzDecodeHistory feeds the scale history file's decoder arbitrary
// contents: it never panics; its only error is a line over MaxHistoryLine;
// with keep it returns the last keep records of what it reads without it;
// and every record it returns writes back (as Append writes it) to a line
// that reads back the same.
func FuzzDecodeHistory(f *testing.F) {
	// Seeds: what History.Append writes (the records of
	// TestHistoryRoundTrip), a torn last line, and lines that are not
	// records.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := Decision{Time: t0, Current: 3, Desired: 5, Action: ActionUp, Metric: "cpu", Value: 91.5, Target: 70, Reasons: []string{"ceil(3 × 91.5/70) = 4"}}
	var good bytes.Buffer
	for i, oc := range []string{OutcomeApplied, OutcomeRefused, OutcomeFailed, OutcomeObserved, OutcomeDryRun, OutcomeHeld} {
		b, _ := json.Marshal(Record{Time: t0.Add(time.Duration(i) * time.Second), Node: "el-3", Provider: "dry-run", Outcome: oc,
			Lease: fence.Lease{Holder: "el-3", Priority: 3, Term: uint64(i + 1)}, Decision: d})
		good.Write(append(b, '\n'))
	}
	f.Add(good.Bytes())
	f.Add(append(append([]byte(nil), good.Bytes()...), `{"time":"2026-`...))
	f.Add([]byte("null\n[]\n{}\n\n{\"lease\":{\"term\":-1}}\n{\"decision\":{\"value\":1e999}}\n"))
	f.Add([]byte(strings.Repeat("x", 70000)))
	f.Fuzz(func(t *testing.T, b []byte) {
		all, err := DecodeHistory(bytes.NewReader(b), 0)
		if err != nil {
			if !strings.Contains(err.Error(), "too long") {
				t.Fatalf("error %v", err)
			}
			return
		}
		const keep = 3
		last, err := DecodeHistory(bytes.NewReader(b), keep)
		if err != nil {
			t.Fatal(err)
		}
		want := all[max(0, len(all)-keep):]
		if len(last) != len(want) || len(last) > 0 && !reflect.DeepEqual(last, want) {
			t.Fatalf("keep %d: %d records, want the last %d of %d", keep, len(last), len(want), len(all))
		}
		h := &History{keep: keep, recent: last}
		_, _ = h.NewestAction()
		_, _ = h.LastAction()
		for i, r := range all {
			if i == 16 {
				break // enough to check the round trip; the input may hold thousands
			}
			_, _ = r.Known("history")
			line, err := json.Marshal(r)
			if err != nil {
				continue // a time outside what JSON writes: Append would fail and say so
			}
			back, err := DecodeHistory(bytes.NewReader(append(line, '\n')), 0)
			if err != nil || len(back) != 1 {
				t.Fatalf("record %+v writes back as %s, which reads as %d records (%v)", r, line, len(back), err)
			}
			again, _ := json.Marshal(back[0])
			if !bytes.Equal(again, line) {
				t.Fatalf("record writes back as %s, then as %s", line, again)
			}
		}
	})
}
