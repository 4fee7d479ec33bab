package providers

import (
	"os"
	"testing"

	"github.com/shoalmesh/shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine is still running when
// they end: whatever the code under test starts, it must stop. Started as a
// provider helper (helper_test.go), the binary serves instead.
func TestMain(m *testing.M) {
	if os.Getenv(helperModeEnv) == "1" && len(os.Args) == 2 && os.Args[1] == "serve" {
		os.Exit(serveTestHelper())
	}
	leakcheck.VerifyTestMain(m)
}
