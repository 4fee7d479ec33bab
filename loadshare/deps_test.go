package loadshare

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps keeps loadshare, its simulation and its command free of anything
// outside the standard library (DESIGN.md): what they link, not only what
// their files name, is the standard library and loadshare's own packages.
func TestDeps(t *testing.T) {
	deptest.DepChecker{Pkg: "./...", StdOnly: true}.Check(t)
}
