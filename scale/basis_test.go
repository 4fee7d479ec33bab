package scale

import (
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/fence"
)

func known(term uint64, holder string, prio int, at time.Time, from, to int) Known {
	return Known{Lease: fence.Lease{Holder: holder, Priority: prio, Term: term}, Action: Action{Time: at, From: from, To: to}}
}

// TestLedgerKeepsTheNewestTerm: whatever order records arrive in and
// whatever their clocks say, the ledger keeps the highest full term, and
// within one lease the latest action.
func TestLedgerKeepsTheNewestTerm(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	own := known(1, "n5", 5, t0.Add(time.Hour), 7, 8) // a later clock, an older term
	n4 := known(2, "n4", 4, t0, 8, 21)
	n4b := known(2, "n4", 4, t0.Add(time.Second), 21, 25)
	low := known(2, "n1", 1, t0.Add(2*time.Second), 3, 4) // same term number, lower rank
	for _, order := range [][]Known{{own, n4, n4b, low}, {n4b, low, own, n4}, {low, n4b, n4, own}} {
		var l Ledger
		for _, k := range order {
			l.Learn(k)
		}
		if got, ok := l.Last(); !ok || got != n4b {
			t.Fatalf("order %v: kept %v, want %v", order, got, n4b)
		}
	}
	var l Ledger
	if !l.Learn(own) || !l.Learn(n4) || l.Learn(own) || l.Learn(n4) {
		t.Fatal("Learn reports news wrongly")
	}
}

// TestBasis is the table of which count a decision starts from.
func TestBasis(t *testing.T) {
	last := known(3, "n4", 4, time.Unix(0, 0), 8, 21)
	for _, c := range []struct {
		name string
		in   BasisInput
		n    int
		src  string
	}{
		{"authoritative provider over the last action", BasisInput{Provider: 25, ProviderKnown: true, Authoritative: true, Last: last, LastKnown: true, Alive: 3}, 25, SourceProvider},
		{"last action over a provider record", BasisInput{Provider: 8, ProviderKnown: true, Last: last, LastKnown: true, Alive: 3}, 21, SourceLastAction},
		{"last action over the mesh", BasisInput{Last: last, LastKnown: true, Alive: 3}, 21, SourceLastAction},
		{"provider record when nothing is known", BasisInput{Provider: 4, ProviderKnown: true, Alive: 3}, 4, SourceProviderRecord},
		{"the mesh last", BasisInput{Alive: 3}, 3, SourceMesh},
		{"authoritative but unread", BasisInput{Authoritative: true, Last: last, LastKnown: true, Alive: 3}, 21, SourceLastAction},
	} {
		if n, src := Basis(c.in); n != c.n || src != c.src {
			t.Errorf("%s: %d from %q, want %d from %q", c.name, n, src, c.n, c.src)
		}
	}
}

// TestHoldWithoutFigures: an evaluation without figures that the bounds
// turned into an action is held on a guessed count, kept on an
// authoritative one; a decision of none is left alone.
func TestHoldWithoutFigures(t *testing.T) {
	p, err := New(Config{Metric: "cpu", Target: 70, Min: 1, Max: 5})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	d := p.Evaluate(now, Input{Current: 0, Valid: false})
	if d.Action != ActionUp || d.Desired != 1 {
		t.Fatalf("the policy's own answer changed: %+v", d)
	}
	h, held := HoldWithoutFigures(d, false)
	if !held || h.Action != ActionNone || h.Desired != 0 || !strings.Contains(h.Reason(), "no load figures: no decision") || !strings.Contains(h.Reason(), "0→1") {
		t.Fatalf("guessed count: %+v held %v", h, held)
	}
	if len(d.Reasons) == len(h.Reasons) {
		t.Fatal("HoldWithoutFigures changed its argument's reasons")
	}
	if a, held := HoldWithoutFigures(d, true); held || a.Action != ActionUp || a.Desired != 1 {
		t.Fatalf("authoritative count: %+v held %v", a, held)
	}
	none := p.Evaluate(now, Input{Current: 2, Valid: false})
	if n, held := HoldWithoutFigures(none, false); held || n.Action != ActionNone {
		t.Fatalf("nothing to hold: %+v %v", n, held)
	}
}

// TestHistoryNewestActionByTerm: an action of an older term appended after
// a newer one (this node's own, from before, read back late) does not hide
// it; records that changed nothing do not count.
func TestHistoryNewestActionByTerm(t *testing.T) {
	h, err := OpenHistory(t.TempDir()+"/h.jsonl", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(outcome string, term uint64, holder string, from, to int, at time.Time) {
		if err := h.Append(Record{Time: at, Node: "n5", Outcome: outcome, Lease: fence.Lease{Holder: holder, Term: term},
			Decision: Decision{Time: at, Current: from, Desired: to}}); err != nil {
			t.Fatal(err)
		}
	}
	add(OutcomeObserved, 2, "n4", 8, 21, t0)
	add(OutcomeApplied, 1, "n5", 7, 8, t0.Add(time.Minute))
	add(OutcomeRefused, 3, "n5", 21, 30, t0.Add(2*time.Minute))
	add(OutcomeHeld, 3, "n5", 21, 30, t0.Add(3*time.Minute))
	r, ok := h.NewestAction()
	if !ok || r.Lease.Term != 2 || r.Decision.Desired != 21 {
		t.Fatalf("newest %+v %v, want n4's 8→21 under term 2", r, ok)
	}
}
