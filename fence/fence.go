package fence

import (
	"cmp"
	"errors"
	"fmt"
	"sync"
)

// Fencing errors. Fence.Admit and Fence.AdmitLease wrap them with the values.
var (
	// ErrStaleTerm: the term is lower than the last one admitted.
	ErrStaleTerm = errors.New("fence: stale term")
	// ErrTermConflict: the term equals the last one admitted but the holder
	// differs. It wraps ErrStaleTerm, so errors.Is(err, ErrStaleTerm) holds.
	ErrTermConflict = fmt.Errorf("%w: term already admitted for another holder", ErrStaleTerm)
)

// Lease is what a coordinator acts under: the holder's name and its term.
// election's Node.Lease returns one only while the node acts; attach it to
// every action taken outside the mesh, so that the receiving side can fence it.
type Lease struct {
	Holder   string
	Priority int
	Term     uint64
}

// Compare orders leases by their full term (Term, Priority, Holder): the
// term number first, then the holder's rank (higher Priority, then the
// byte-wise greater Holder, as election.Rank). The election never lets two
// holders share a full term, whatever happens to the membership.
func (l Lease) Compare(o Lease) int {
	if l.Term != o.Term {
		if l.Term < o.Term {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(l.Priority, o.Priority); c != 0 {
		return c
	}
	return cmp.Compare(l.Holder, o.Holder)
}

// Fence is the receiving side of fencing (a scaling provider, say): it admits
// an action only if its term is not lower than the highest term it admitted
// before. It is safe for concurrent use. Persist Last() after each admitted
// action and pass it to New after a restart, or a restarted provider
// would accept a deposed coordinator's late action.
type Fence struct {
	mu   sync.Mutex
	last Lease // Holder "" when admitted by Admit
}

// New returns a Fence that has already admitted last (Holder may be
// empty when unknown): what Last returned before a restart.
func New(last Lease) *Fence {
	return &Fence{last: last}
}

// Admit admits an action under term, or returns an error wrapping
// ErrStaleTerm when term is lower than the last admitted term. An equal term
// is admitted: the election never lets two holders act under one term. A
// provider that learns the holder too should prefer AdmitLease.
func (f *Fence) Admit(term uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if term < f.last.Term {
		return fmt.Errorf("%w: term %d, already admitted %d (holder %q); the coordinator was deposed, drop the action",
			ErrStaleTerm, term, f.last.Term, f.last.Holder)
	}
	if term > f.last.Term {
		f.last = Lease{Term: term}
	}
	return nil
}

// AdmitLease admits an action under l unless l's full term (Term, then the
// holder's rank; Lease.Compare) is lower than the last admitted one. A lease
// with the same term number as the last but another holder is refused with
// ErrTermConflict when it ranks lower, and admitted (it supersedes) when it
// ranks higher; the same lease again is admitted. Prefer it to Admit.
func (f *Fence) AdmitLease(l Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case l.Term < f.last.Term:
		return fmt.Errorf("%w: term %d from %q, already admitted %d (holder %q); the coordinator was deposed, drop the action",
			ErrStaleTerm, l.Term, l.Holder, f.last.Term, f.last.Holder)
	case l.Term == f.last.Term && f.last.Holder != "" && l.Compare(f.last) < 0:
		return fmt.Errorf("%w: term %d from %q (priority %d), admitted for %q (priority %d), which ranks higher; drop the action",
			ErrTermConflict, l.Term, l.Holder, l.Priority, f.last.Holder, f.last.Priority)
	}
	f.last = l
	return nil
}

// Last returns the highest admitted lease (Holder "" if admitted by Admit,
// which does not know it), for persisting and passing to New.
func (f *Fence) Last() Lease {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}
