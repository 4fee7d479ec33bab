package fence

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps: package fence links the standard library only, so that anything
// that acts under or checks a lease (the election, the scale policy, a
// provider, a webhook receiver written in Go) can import it for free.
func TestDeps(t *testing.T) {
	deptest.DepChecker{Pkg: ".", StdOnly: true}.Check(t)
}
