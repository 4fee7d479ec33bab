package fence

import (
	"errors"
	"sync"
	"testing"
)

func TestFenceAdmit(t *testing.T) {
	f := New(Lease{})
	for _, tc := range []struct {
		term uint64
		ok   bool
	}{{1, true}, {1, true}, {3, true}, {2, false}, {3, true}, {4, true}, {0, false}} {
		err := f.Admit(tc.term)
		if (err == nil) != tc.ok {
			t.Fatalf("Admit(%d): %v, want ok=%t", tc.term, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrStaleTerm) {
			t.Fatalf("Admit(%d): %v does not wrap ErrStaleTerm", tc.term, err)
		}
	}
	if got := f.Last(); got.Term != 4 {
		t.Fatalf("Last = %v, want term 4", got)
	}
}

func TestFenceAdmitLease(t *testing.T) {
	a := Lease{Holder: "a", Priority: 1, Term: 5}
	b := Lease{Holder: "b", Priority: 1, Term: 5} // same number, ranks above a
	f := New(Lease{})
	steps := []struct {
		l    Lease
		want error
	}{
		{b, nil},
		{b, nil}, // the same holder again
		{a, ErrTermConflict},
		{Lease{Holder: "a", Priority: 1, Term: 4}, ErrStaleTerm},
		{Lease{Holder: "a", Priority: 1, Term: 6}, nil},
		{b, ErrStaleTerm},
	}
	for i, st := range steps {
		err := f.AdmitLease(st.l)
		if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) {
			t.Fatalf("step %d AdmitLease(%+v): %v, want %v", i, st.l, err, st.want)
		}
		if err != nil && !errors.Is(err, ErrStaleTerm) {
			t.Fatalf("step %d: %v does not wrap ErrStaleTerm", i, err)
		}
	}
	// Persist and restore.
	g := New(f.Last())
	if err := g.AdmitLease(b); !errors.Is(err, ErrStaleTerm) {
		t.Fatalf("restored fence admitted %v: %v", b, err)
	}
}

func TestFenceConcurrent(t *testing.T) {
	f := New(Lease{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(1000) {
				_ = f.Admit(i*8 + uint64(g))
				_ = f.AdmitLease(Lease{Holder: "x", Term: i})
			}
		}()
	}
	wg.Wait()
	if got := f.Last().Term; got != 999*8+7 {
		t.Fatalf("Last term %d, want %d", got, 999*8+7)
	}
}
