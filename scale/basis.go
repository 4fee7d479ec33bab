package scale

import (
	"fmt"

	"github.com/shoalmesh/shoal/fence"
)

// Sources of the count a decision starts from (Basis), as the agent's
// status reports them.
const (
	// SourceProvider: read from the resource by a provider whose count is
	// authoritative (Provider.Authoritative).
	SourceProvider = "provider"
	// SourceLastAction: the count after the newest action known anywhere
	// (announced in the mesh, kept in the history or in the provider's
	// record), ordered by term.
	SourceLastAction = "last action"
	// SourceProviderRecord: a provider's own record of the count that is
	// not read from the resource (the dry-run's simulated count, before any
	// action is known).
	SourceProviderRecord = "provider record"
	// SourceMesh: the alive Shoal members, when nothing else is known.
	SourceMesh = "mesh"
)

// Known is an action known to have taken place, with the lease it was
// taken under and where it was learnt ("self", "mesh", "history",
// "provider").
type Known struct {
	Lease  fence.Lease
	Action Action
	Source string
}

// Newer reports whether k was taken after o: under a higher full term
// (fence.Lease.Compare), or under the same lease at a later time. Terms
// order actions across nodes whatever their clocks say; times only order
// one holder's actions within its term.
func (k Known) Newer(o Known) bool {
	if c := k.Lease.Compare(o.Lease); c != 0 {
		return c > 0
	}
	return k.Action.Time.After(o.Action.Time)
}

func (k Known) String() string {
	return fmt.Sprintf("%d→%d by %q under term %d (%s)", k.Action.From, k.Action.To, k.Lease.Holder, k.Lease.Term, k.Source)
}

// Ledger keeps the newest action known from any source: the one a new
// coordinator continues from, unless its provider reads the count from the
// resource. A record of an older term never replaces a newer one, whichever
// source (this node's own provider fence included) it comes from. It is not
// safe for concurrent use.
type Ledger struct {
	last Known
	ok   bool
}

// Learn keeps k if it is newer than the action kept, and reports whether it
// was.
func (l *Ledger) Learn(k Known) bool {
	if l.ok && !k.Newer(l.last) {
		return false
	}
	l.last, l.ok = k, true
	return true
}

// Last returns the newest action learnt.
func (l *Ledger) Last() (Known, bool) { return l.last, l.ok }

// BasisInput is what Basis chooses from.
type BasisInput struct {
	// Provider is the provider's count when ProviderKnown (Current
	// answered); Authoritative says whether that count is read from the
	// resource (Provider.Authoritative).
	Provider      int
	ProviderKnown bool
	Authoritative bool
	// Last is the newest action known anywhere (Ledger.Last).
	Last      Known
	LastKnown bool
	// Alive is the number of alive Shoal members.
	Alive int
}

// Basis returns the count a decision starts from, and its source: the
// provider's count where it is authoritative; else the count after the
// newest action known (by term); else a provider's non-authoritative
// record; else the alive members.
func Basis(in BasisInput) (int, string) {
	switch {
	case in.ProviderKnown && in.Authoritative:
		return in.Provider, SourceProvider
	case in.LastKnown:
		return in.Last.Action.To, SourceLastAction
	case in.ProviderKnown:
		return in.Provider, SourceProviderRecord
	}
	return in.Alive, SourceMesh
}

// ReasonNoFigures is the reason HoldWithoutFigures gives.
const ReasonNoFigures = "no load figures: no decision (bounds are enforced without figures only against a count read from the resource)"

// HoldWithoutFigures applies the rule for an evaluation without load
// figures (Input.Valid false): no decision, except that a count read from
// the resource (authoritative) outside [Min, Max] is brought back inside,
// as the Kubernetes HPA does. A count guessed from the mesh or from the
// last action known is not a reason to act for a node that knows no load:
// the decision is turned into ActionNone with ReasonNoFigures, and held is
// true when an action was withheld.
func HoldWithoutFigures(d Decision, authoritative bool) (out Decision, held bool) {
	if d.Action == ActionNone || authoritative {
		return d, false
	}
	d.Reasons = append(append([]string(nil), d.Reasons...), fmt.Sprintf("%s; would have gone %d→%d", ReasonNoFigures, d.Current, d.Desired))
	d.Desired, d.Action = d.Current, ActionNone
	return d, true
}
