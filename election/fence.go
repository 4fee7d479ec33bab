package election

import "github.com/shoalmesh/shoal/fence"

// The lease a Node hands out and the fence that checks it live in package
// fence (standard library only), so that the receiving side (package scale,
// its providers, a webhook receiver written in Go) can fence a term without
// importing the election. These aliases keep the election's API whole.
type (
	// Lease is fence.Lease: what a coordinator acts under.
	Lease = fence.Lease
	// Fence is fence.Fence: the receiving side of fencing.
	Fence = fence.Fence
)

// Fencing errors: fence.ErrStaleTerm and fence.ErrTermConflict.
var (
	ErrStaleTerm    = fence.ErrStaleTerm
	ErrTermConflict = fence.ErrTermConflict
)

// NewFence is fence.New.
func NewFence(last Lease) *Fence { return fence.New(last) }
