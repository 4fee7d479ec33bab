package election

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps keeps the election a pure state machine (DESIGN.md: it knows
// nothing of serf, libp2p or the rest): the standard library and package
// fence only, checked on what the package links, not on its files.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		Pkg:     ".",
		StdOnly: true,
		Allow:   []string{deptest.Module + "/fence"},
	}.Check(t)
}
