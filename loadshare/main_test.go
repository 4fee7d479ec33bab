package loadshare

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is still running when
// they end: whatever the code under test starts, it must stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
