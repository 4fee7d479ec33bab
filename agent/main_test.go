package agent

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine is still running when
// they end: whatever the code under test starts, it must stop.
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, leakcheck.MemberlistProbe)
}
