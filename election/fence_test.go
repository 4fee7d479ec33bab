package election

import (
	"errors"
	"sync"
	"testing"
)

func TestFenceAdmit(t *testing.T) {
	f := NewFence(Lease{})
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
	f := NewFence(Lease{})
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
	g := NewFence(f.Last())
	if err := g.AdmitLease(b); !errors.Is(err, ErrStaleTerm) {
		t.Fatalf("restored fence admitted %v: %v", b, err)
	}
}

func TestFenceConcurrent(t *testing.T) {
	f := NewFence(Lease{})
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

// TestTermNumberReuse steps outside the membership assumption of the package
// doc on purpose: the members that acknowledged term 1 leave or stop, and
// two members that never heard of it elect each other under term 1 again.
// The full term (number, rank) still tells the two holders apart, the Fence
// refuses the lower-ranked one, and the reused holder steps down and moves
// to a new number as soon as it hears from a member that knew.
func TestTermNumberReuse(t *testing.T) {
	cfg := FastConfig()
	cfg.Jitter = 0
	s := NewSim(SimConfig{Node: cfg})
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if _, err := s.AddNode(n, 0); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	stabilize := func() {
		for i := 0; s.InFlight() > 0; i++ {
			if i > 50 {
				t.Fatal("does not stabilize")
			}
			s.Deliver(nil)
		}
	}
	fence := NewFence(Lease{})
	must(s.Kill("n1"))
	must(s.Kill("n4"))
	must(s.Request("n3"))
	stabilize()
	first, ok := s.Node("n5").Lease()
	if !ok || first.Term != 1 {
		t.Fatalf("n5 lease %v %t, want term 1", first, ok)
	}
	must(fence.AdmitLease(first))

	must(s.Kill("n3"))
	must(s.Leave("n5"))
	must(s.Leave("n2"))
	must(s.Revive("n1"))
	must(s.Revive("n4"))
	must(s.Request("n4"))
	stabilize()
	second, ok := s.Node("n4").Lease()
	if !ok || second.Term != 1 || second.Holder != "n4" {
		t.Fatalf("n4 lease %v %t, want term 1 (the number reused)", second, ok)
	}
	if second.Compare(first) == 0 {
		t.Fatal("two holders share a full term")
	}
	if err := fence.AdmitLease(second); !errors.Is(err, ErrTermConflict) {
		t.Fatalf("AdmitLease(%v) after %v: %v, want ErrTermConflict", second, first, err)
	}

	// n3 knew term 1 (it promised it to n5). Once it is back, n4 hears of
	// it, steps down and wins term 2, which the fence admits.
	must(s.Revive("n3"))
	if _, ok := s.Settle(200); !ok {
		t.Fatal("not settled")
	}
	third, ok := s.Node("n4").Lease()
	if !ok || third.Term < 2 {
		t.Fatalf("n4 lease %v %t, want a term above 1", third, ok)
	}
	must(fence.AdmitLease(third))
}
