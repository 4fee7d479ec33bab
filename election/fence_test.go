package election

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// TestLeaseCompareFollowsRank: between equal term numbers, the fence orders
// leases as the election ranks their holders (package fence cannot import
// Rank, so it carries its own comparison; this keeps the two in step).
func TestLeaseCompareFollowsRank(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"", "a", "b", "n1", "n10", "n2", "\xff"}
	for range 2000 {
		a := Lease{Holder: names[r.IntN(len(names))], Priority: r.IntN(3) - 1, Term: uint64(r.IntN(3))}
		b := Lease{Holder: names[r.IntN(len(names))], Priority: r.IntN(3) - 1, Term: uint64(r.IntN(3))}
		want := Rank{a.Priority, a.Holder}.Compare(Rank{b.Priority, b.Holder})
		if a.Term != b.Term {
			want = -1
			if a.Term > b.Term {
				want = 1
			}
		}
		if got := a.Compare(b); got != want {
			t.Fatalf("%+v.Compare(%+v) = %d, want %d", a, b, got, want)
		}
	}
}

// TestTermNumberReuse steps outside the membership assumption of the package
// doc on purpose: the members that acknowledged term 1 leave or stop, and
// two members that never heard of it elect each other under term 1 again.
// The full term (number, rank) still tells the two holders apart, the Fence
// refuses the lower-ranked one, and the reused holder steps down as soon as
// it hears from a member that knew; a new number wins.
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
	// it and steps down, and a later term wins (without Preempt, n4's or
	// n3's), which the fence admits.
	must(s.Revive("n3"))
	if _, ok := s.Settle(200); !ok {
		t.Fatal("not settled")
	}
	var third Lease
	for _, n := range []string{"n1", "n3", "n4"} {
		if l, ok := s.Node(n).Lease(); ok {
			third = l
		}
	}
	if third.Term < 2 {
		t.Fatalf("acting after n3 is back: %v, want a term above 1\n%s", third, dump(s))
	}
	must(fence.AdmitLease(third))
}
